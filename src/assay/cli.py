"""The command line: a thin layer over the Python API.

Every user error (bad input, bad scenario, bad usage) is one line on stderr
and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from . import __version__
from .errors import AssayError, UsageError

TERMINAL_RULE_ITEMSETS = 20_000
DESCRIPTION = "assay: detection scenarios over windowed per-key state (fraud, AML, compliance)."


def _parse_map(values: Sequence[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for text in values or []:
        canonical, sep, original = text.partition("=")
        if not sep or not canonical or not original:
            raise UsageError(f"--map expects CANONICAL=COLUMN (e.g. entity=CustomerID), got {text!r}")
        mapping[canonical.strip()] = original.strip()
    return mapping


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assay", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"assay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="evaluate scenarios over event files and write alerts",
                         description="Evaluate SCENARIOS over EVENTS (CSV, CSV.GZ, JSONL or Parquet). "
                                     "Without --out only a summary is printed.")
    run.add_argument("scenarios", metavar="SCENARIOS", help="scenario file (YAML)")
    run.add_argument("events", metavar="EVENTS", nargs="+", help="event files, read in the order given")
    run.add_argument("--out", metavar="FILE", help="write alerts to FILE (.jsonl, .csv or .parquet)")
    run.add_argument("--map", metavar="CANONICAL=COLUMN", action="append",
                     help="read a canonical column from another column name, e.g. --map entity=CustomerID "
                          "(repeatable; overrides the scenario file's input.map)")
    run.add_argument("--on-error", choices=("stop", "skip"), default="stop",
                     help="bad rows: stop at the first one (default) or skip them into the reject file")
    run.add_argument("--rejects", metavar="FILE",
                     help="with --on-error skip: where rejected rows go (default: rejects.jsonl next to "
                          "--out, or ./rejects.jsonl)")
    run.add_argument("--quiet", action="store_true", help="print no summary")
    run.add_argument("--store", metavar="URL", nargs="?", const="",
                     help="also write the alerts, with their evidence rows, to the alert store "
                          "(default URL: $ASSAY_STORE or sqlite:///assay.db); idempotent")

    token = sub.add_parser("token", help="create or revoke API tokens of the store",
                           description="Create a bearer token for a user, role and purposes (printed once, "
                                       "stored hashed), or revoke one.")
    token.add_argument("action", choices=("create", "revoke"))
    token.add_argument("--user", help="create: who the token is for")
    token.add_argument("--role", choices=("viewer", "analyst", "supervisor", "admin"), help="create: the role")
    token.add_argument("--purpose", action="append", help="create: a purpose the token sees (repeatable)")
    token.add_argument("--id", type=int, help="revoke: the token's id")
    token.add_argument("--store", metavar="URL", help="the store (default: $ASSAY_STORE or sqlite:///assay.db)")

    serve = sub.add_parser("serve", help="serve the store's REST API",
                           description="Serve the REST API over the alert store (needs the 'api' extra). "
                                       "Every endpoint but /health needs a bearer token (assay token create).")
    serve.add_argument("--store", metavar="URL", help="the store (default: $ASSAY_STORE or sqlite:///assay.db)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")

    pseudo = sub.add_parser("pseudonymize", help="replace identifier columns by keyed pseudonyms",
                            description="Replace identifier columns by HMAC-SHA256 pseudonyms (same value and key, "
                                        "same pseudonym); the key is read from a file or $ASSAY_PSEUDONYM_KEY and "
                                        "never written out.")
    pseudo.add_argument("source", metavar="IN", help="a CSV, JSONL or Parquet file")
    pseudo.add_argument("target", metavar="OUT", help="where to write (.csv, .jsonl or .parquet)")
    pseudo.add_argument("--columns", required=True, help="comma-separated columns, e.g. entity,counterparty")
    pseudo.add_argument("--key-file", metavar="FILE", help="the secret key (default: $ASSAY_PSEUDONYM_KEY)")

    purge = sub.add_parser("purge", help="delete closed cases past retention",
                           description="Delete closed cases last changed longer ago than the retention, with "
                                       "their alerts, evidence rows and notes; recorded in the audit trail.")
    purge.add_argument("--older-than", required=True, metavar="DURATION", help="retention, e.g. 400d")
    purge.add_argument("--store", metavar="URL", help="the store (default: $ASSAY_STORE or sqlite:///assay.db)")

    export = sub.add_parser("export-subject", help="export everything stored about one key (subject access)",
                            description="Write everything the store holds about one key within one purpose as "
                                        "JSON; recorded in the audit trail.")
    export.add_argument("key", metavar="KEY")
    export.add_argument("--purpose", required=True, help="the purpose (one at a time)")
    export.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    export.add_argument("--store", metavar="URL", help="the store (default: $ASSAY_STORE or sqlite:///assay.db)")

    from .cli_stream import add_parsers as add_stream_parsers

    add_stream_parsers(sub)

    audit = sub.add_parser("audit", help="check the store's audit trail",
                           description="Walk the hash-chained audit trail of the store and report the first "
                                       "entry that was changed or removed.")
    audit.add_argument("action", choices=("verify",), help="verify: walk the chain")
    audit.add_argument("--store", metavar="URL", help="the store (default: $ASSAY_STORE or sqlite:///assay.db)")

    back = sub.add_parser("backtest", help="score scenarios against labelled history",
                          description="Run SCENARIOS over EVENTS and score the alerts against LABELS "
                                      "(key,label[,label_ts]): precision, recall, alert volume, time to alert.")
    back.add_argument("scenarios", metavar="SCENARIOS", help="scenario file (YAML)")
    back.add_argument("events", metavar="EVENTS", nargs="+", help="event files")
    back.add_argument("--labels", metavar="FILE", required=True, help="CSV with key,label (and optionally label_ts)")
    back.add_argument("--report", metavar="FILE", help="write a self-contained HTML report")
    back.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    back.add_argument("--baseline", metavar="SCENARIOS", help="an earlier scenario file to compare with")
    back.add_argument("--sweep", metavar="ID:PARAM=VALUES",
                      help="vary one parameter: ID:threshold=LO:HI:STEP, ID:min_distinct=LO:HI:STEP or "
                           "ID:window=1h,6h,1d")
    back.add_argument("--population", metavar="N", type=int,
                      help="project false alerts per month at a population of N keys")
    back.add_argument("--unlabeled", choices=("negative", "exclude"), default="negative",
                      help="keys without a label: count them as negatives (default) or leave them out")
    back.add_argument("--map", metavar="CANONICAL=COLUMN", action="append",
                      help="read a canonical column from another column name (repeatable)")

    mine = sub.add_parser("mine", help="find frequent itemsets and association rules",
                          description="Mine frequent itemsets (Eclat) and association rules from event files "
                                      "or a basket file (.dat, .dat.gz: one basket a line, items separated by "
                                      "spaces).")
    mine.add_argument("events", metavar="EVENTS", nargs="+", help="event files, or one basket file")
    mine.add_argument("--by", default="event_id",
                      help="what makes a basket: event_id (one transaction, default) or a key column such as "
                           "entity (with --window)")
    mine.add_argument("--window", metavar="DURATION",
                      help="with --by KEY: the items one key bought within this window (e.g. 72h)")
    mine.add_argument("--min-support", type=float, default=0.01, metavar="S",
                      help="a fraction of the baskets (below 1) or a count (1 or more); default 0.01")
    mine.add_argument("--max-len", type=int, metavar="N", help="longest itemset (default: no limit)")
    mine.add_argument("--out", metavar="FILE", help="write itemsets (.parquet, .csv or .jsonl)")
    mine.add_argument("--rules", metavar="FILE", help="write association rules (.parquet, .csv or .jsonl)")
    mine.add_argument("--min-confidence", type=float, default=0.5, metavar="C",
                      help="rules below this confidence are left out (default 0.5)")
    mine.add_argument("--top", type=int, default=15, metavar="N", help="rows in the terminal tables (default 15)")
    mine.add_argument("--map", metavar="CANONICAL=COLUMN", action="append",
                      help="read a canonical column from another column name (repeatable)")
    mine.add_argument("--labels", metavar="FILE",
                      help="key,label CSV: find the combinations over-represented among positive keys "
                           "(with --by KEY); --min-support then applies to the positive keys' baskets")
    mine.add_argument("--suggest", metavar="FILE",
                      help="with --labels: write the best combinations as a scenario file")
    mine.add_argument("--purpose", help="with --suggest: the purpose of the scenario file")
    mine.add_argument("--suggest-top", type=int, default=10, metavar="K",
                      help="with --suggest: how many scenarios (default 10)")

    check = sub.add_parser("check", help="validate a scenario file and say what each scenario does",
                           description="Validate SCENARIOS and print what each scenario will do.")
    check.add_argument("scenarios", metavar="SCENARIOS", help="scenario file (YAML)")

    demo = sub.add_parser("demo", help="generate a synthetic purchase stream with planted patterns and run "
                                       "the demo scenarios on it",
                          description="Build a deterministic synthetic purchase stream (about a million rows) "
                                      "with planted patterns, run the demo scenario pack, and report what "
                                      "was caught.")
    demo.add_argument("--dir", metavar="DIR", default="assay-demo", help="where to write files (default: "
                                                                         "./assay-demo)")
    demo.add_argument("--customers", metavar="N", type=int, default=60_000,
                      help="number of ordinary customers (default 60000, about a million rows)")
    demo.add_argument("--seed", metavar="N", type=int, default=7, help="random seed (default 7)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "check":
            return _check(args)
        if args.command == "backtest":
            return _backtest(args)
        if args.command == "mine":
            return _mine(args)
        if args.command == "audit":
            return _audit(args)
        if args.command == "token":
            return _token(args)
        if args.command in ("pseudonymize", "purge", "export-subject"):
            return _privacy(args)
        if args.command == "publish":
            from .cli_stream import run_publish

            return run_publish(args, _parse_map)
        if args.command == "stream":
            from .cli_stream import run_stream

            return run_stream(args)
        if args.command == "serve":
            import uvicorn

            from .api_http import create_app
            from .store import open_store

            uvicorn.run(create_app(open_store(args.store)), host=args.host, port=args.port)
            return 0
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(Path(args.dir), customers=args.customers, seed=args.seed)
    except AssayError as exc:
        print(f"assay: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("assay: interrupted", file=sys.stderr)
        return 130
    return 0


def _check(args: argparse.Namespace) -> int:
    from .scenarios import load_scenarios

    spec = load_scenarios(Path(args.scenarios))
    print(f"{spec.source}: {len(spec.scenarios)} scenario(s), purpose '{spec.purpose}'")
    if spec.mapping:
        pairs = ", ".join(f"{k}={v}" for k, v in spec.mapping.items())
        print(f"  input columns: {pairs}")
    for s in spec.scenarios:
        print(f"  {s.id} (v{s.version}, {s.kind}): {s.describe()}")
    return 0


def _privacy(args: argparse.Namespace) -> int:
    import json
    from datetime import timedelta

    if args.command == "pseudonymize":
        from .pseudonymize import load_key, pseudonymize

        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
        n = pseudonymize(args.source, args.target, columns, load_key(args.key_file))
        print(f"{n:,} rows written to {args.target} with {', '.join(columns)} pseudonymised")
        return 0
    from .durations import parse_duration
    from .store import open_store
    from .store.privacy import export_subject, purge

    store = open_store(args.store)
    if args.command == "purge":
        counts = purge(store, timedelta(microseconds=parse_duration(args.older_than)))
        print(f"purged {counts['cases']:,} closed case(s), {counts['alerts']:,} alert(s), "
              f"{counts['evidence_rows']:,} evidence row(s), {counts['notes']:,} note(s)")
        return 0
    data = json.dumps(export_subject(store, args.key, args.purpose), indent=2, default=str)
    if args.out:
        Path(args.out).write_text(data, encoding="utf-8")
        print(f"written to {args.out}")
    else:
        print(data)
    return 0


def _token(args: argparse.Namespace) -> int:
    from .store import open_store
    from .store.cases import create_token, revoke_token

    store = open_store(args.store)
    if args.action == "create":
        if not args.user or not args.role or not args.purpose:
            raise UsageError("token create needs --user, --role and at least one --purpose")
        token = create_token(store, args.user, args.role, args.purpose)
        print(token)
        print("(shown once: the store keeps only its hash)", file=sys.stderr)
        return 0
    if args.id is None:
        raise UsageError("token revoke needs --id")
    revoke_token(store, args.id)
    print(f"token {args.id} revoked")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from .store import open_store, verify_audit

    store = open_store(args.store)
    with store.session() as session:
        report = verify_audit(session)
    if report.ok:
        print(f"audit trail intact: {report.entries:,} entries")
        return 0
    print(f"assay: audit trail broken: {report.problem}", file=sys.stderr)
    return 1


def _mine(args: argparse.Namespace) -> int:
    from .mining import mine, write_table

    if args.window and args.by == "event_id":
        raise UsageError("--window goes with --by KEY (e.g. --by entity --window 72h)")
    if args.labels:
        return _contrast(args)
    if args.suggest:
        raise UsageError("--suggest goes with --labels")
    started = time.perf_counter()
    source = args.events if len(args.events) > 1 else args.events[0]
    result = mine(source, by=args.by, window=args.window, min_support=args.min_support,
                  max_len=args.max_len, mapping=_parse_map(args.map))
    seconds = time.perf_counter() - started
    itemsets = result.itemsets
    print(f"{itemsets.height:,} frequent itemsets in {result.baskets:,} baskets ({result.source}) "
          f"at min support {args.min_support:g}, in {seconds:.2f} s")
    multi = itemsets.filter(pl.col("items").list.len() >= 2).head(args.top)
    if multi.height:
        print(f"\ntop {multi.height} itemsets of two or more items, by support:")
        for items, count, support in multi.iter_rows():
            print(f"  {support:8.4f}  {count:>9,}  {', '.join(items)}")
    if args.rules:
        rules = result.rules(args.min_confidence)
    elif multi.height:
        # for the terminal only: rules among the most frequent itemsets, so that a low support
        # with millions of itemsets still answers at once (--rules FILE writes all of them)
        from .mining import association_rules

        rules = association_rules(itemsets.head(TERMINAL_RULE_ITEMSETS), result.baskets, args.min_confidence)
    else:
        rules = None
    if rules is not None and rules.height:
        print(f"\ntop {min(args.top, rules.height)} rules by lift (confidence >= {args.min_confidence:g}):")
        for row in rules.head(args.top).iter_rows(named=True):
            print(f"  lift {row['lift']:7.2f}  conf {row['confidence']:.2f}  supp {row['support']:.4f}  "
                  f"{', '.join(row['antecedent'])} -> {', '.join(row['consequent'])}")
    if args.out:
        write_table(itemsets, args.out)
        print(f"itemsets written to {args.out}")
    if args.rules and rules is not None:
        write_table(rules, args.rules)
        print(f"rules written to {args.rules}")
    return 0


def _contrast(args: argparse.Namespace) -> int:
    from .backtest import load_labels
    from .contrast import contrast, suggest
    from .mining import load_baskets, write_table

    if args.by == "event_id" or not args.window:
        raise UsageError("--labels needs baskets per key: --by KEY --window DURATION (e.g. --by entity "
                         "--window 72h)")
    if args.suggest and not args.purpose:
        raise UsageError("--suggest needs --purpose (every scenario file declares one)")
    source = args.events if len(args.events) > 1 else args.events[0]
    baskets = load_baskets(source, by=args.by, window=args.window, mapping=_parse_map(args.map))
    found = contrast(baskets, load_labels(Path(args.labels)), min_support=args.min_support,
                     max_len=args.max_len or 4)
    print(f"{found.height:,} candidate combinations frequent among positive keys; best by the lower bound "
          f"of the odds ratio:")
    for row in found.head(args.top).iter_rows(named=True):
        print(f"  OR {row['odds_ratio']:8.1f} [{row['odds_ratio_low']:.1f}-{row['odds_ratio_high']:.1f}]  "
              f"precision {row['precision'] or 0:.2f}  recall {row['recall'] or 0:.2f}  "
              f"pos {row['positive_keys']:,} neg {row['negative_keys']:,}  {', '.join(row['items'])}")
    if args.out:
        write_table(found, args.out)
        print(f"combinations written to {args.out}")
    if args.suggest:
        suggest(found, purpose=args.purpose, window=args.window, top=args.suggest_top, key=args.by,
                path=args.suggest)
        print(f"{min(args.suggest_top, found.height)} scenario(s) written to {args.suggest}; "
              f"check them with: assay check {args.suggest}")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    import json

    from .backtest import backtest, compare, load_labels, projection_sentence, sweep
    from .events import read_events
    from .report import render
    from .scenarios import load_scenarios

    spec = load_scenarios(Path(args.scenarios))
    labels = load_labels(Path(args.labels))
    if args.population is not None and args.population <= 0:
        raise UsageError("--population must be a positive number of keys")
    mapping = {**spec.mapping, **_parse_map(args.map)}
    events = read_events([Path(p) for p in args.events], mapping=mapping).events
    result = backtest(spec, events, labels, unlabeled=args.unlabeled, population=args.population)
    if args.sweep:
        result.sweep = sweep(spec, events, labels, args.sweep, unlabeled=args.unlabeled)
    if args.baseline:
        old = backtest(load_scenarios(Path(args.baseline)), events, labels, unlabeled=args.unlabeled)
        result.baseline = compare(result, old)
    if args.json:
        Path(args.json).write_text(json.dumps(result.as_dict(), indent=2, default=str), encoding="utf-8")
    if args.report:
        Path(args.report).write_text(render(result), encoding="utf-8")
    print(f"backtest of {len(spec.scenarios)} scenario(s), purpose '{spec.purpose}', "
          f"{labels.frame.height:,} labelled keys ({len(labels.positives):,} positive)")
    header = f"{'scenario':<28}{'alerts':>8}{'keys':>7}{'TP':>6}{'FP':>6}{'precision':>11}{'recall':>8}"
    print(header)
    for f in [*result.figures, result.overall]:
        p = "-" if f.precision is None else f"{f.precision:.3f}"
        r = "-" if f.recall is None else f"{f.recall:.3f}"
        print(f"{f.scenario[:27]:<28}{f.alerts:>8,}{f.alerted_keys:>7,}{f.true_positives:>6,}"
              f"{f.false_positives:>6,}{p:>11}{r:>8}")
    for note in result.notes:
        print(note)
    for f in result.figures:
        if f.projection:
            print(projection_sentence(f))
    for path, what in ((args.report, "report"), (args.json, "figures")):
        if path:
            print(f"{what} written to {path}")
    return 0


SWITCH_INTERVAL = 0.0002  # seconds


def _run(args: argparse.Namespace) -> int:
    from .alerts import write_alerts
    from .api import run_detailed

    mapping = _parse_map(args.map)
    paths = [Path(p) for p in args.events]
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file")
    if args.out and not args.out.lower().endswith((".jsonl", ".csv", ".parquet")):
        raise UsageError(f"--out {args.out}: use a .jsonl, .csv or .parquet file name")
    total_bytes = sum(p.stat().st_size for p in paths)
    from .progress import Progress

    # this process runs one batch: threads that take the GIL for moments between kernels
    # (decoding Parquet pages) wait less for the one loading kernels in Python meanwhile
    # (with the default 5 ms, 20-30 ms per row group of 1 M rows in traces)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        with Progress(total_bytes, enabled=not args.quiet) as progress:
            result = run_detailed(Path(args.scenarios), [str(p) for p in paths], mapping=mapping,
                                  on_error="skip" if args.on_error == "skip" else "raise",
                                  on_file=progress.file_done, on_detector=progress.detector_done)
    finally:
        sys.setswitchinterval(interval)
    written = time.perf_counter()
    if args.out:
        write_alerts(result.alerts, args.out)
    rejects_path = None
    if result.rejects.height:
        rejects_path = Path(args.rejects) if args.rejects else (
            Path(args.out).with_name("rejects.jsonl") if args.out else Path("rejects.jsonl"))
        rejects_path.parent.mkdir(parents=True, exist_ok=True)
        result.rejects.write_ndjson(rejects_path)
    stored = None
    if args.store is not None:
        from .store import ingest_alerts, open_store

        store = open_store(args.store or None)
        stored = ingest_alerts(store, result.alerts, result.events,
                               key_columns={s.id: s.key for s in result.scenarios.scenarios})
    result.seconds += time.perf_counter() - written
    if stored is not None and not args.quiet:
        print(f"store: {stored.new_alerts:,} new alert(s), {stored.known_alerts:,} already stored; "
              f"{stored.cases_opened:,} case(s) opened, {stored.cases_extended:,} extended")
    if not args.quiet:
        from .summary import print_summary

        print_summary(result, out=args.out, rejects=rejects_path)
    return 0


def entry() -> None:  # pragma: no cover - exercised by the tests that run the installed command
    """The ``assay`` command: ``main``, then a quick exit.

    When ``main`` returns, every output is written and closed and every store transaction
    committed; what is left is the interpreter's teardown, where unloading Numba's LLVM
    alone takes ~0.2 s, a sixth of a short run. Errors and interrupts exit normally.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


if __name__ == "__main__":  # pragma: no cover
    entry()
