"""``make demo``: the quarterly stress test end to end on embedded defaults, no server needed.

Runs the real DAGs through Airflow's ``dag.test()`` against an embedded SQLite metadata database in
``data_home/airflow``, so what the demo shows is exactly what the scheduler would run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from pipelines.settings import REPO_ROOT, StressSettings, get_settings

if TYPE_CHECKING:
    from pipelines.adapters.object_store import ObjectStore

DEMO_AS_OF = date(2025, 12, 31)


def airflow_environment(settings: StressSettings) -> dict[str, str]:
    """Environment for an embedded Airflow: SQLite metadata in data_home, this repo's DAGs, no examples."""
    home = settings.data_home / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
    }


def prepare_airflow(settings: StressSettings) -> None:
    """Point this process at the embedded Airflow and create its metadata database once."""
    environment = airflow_environment(settings)
    for key, value in environment.items():
        os.environ.setdefault(key, value)
    database = settings.data_home / "airflow" / "airflow.db"
    if not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        print("creating the embedded Airflow metadata database (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=os.environ.copy(),
                       stdout=subprocess.DEVNULL)


def run_dag(dag_id: str, conf: dict[str, Any]) -> str:
    """Run one DAG of this repo with ``dag.test()``; return its run id, raise if it failed."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    run = bag.get_dag(dag_id).test(run_conf=conf)
    if str(run.state) != "success":
        raise RuntimeError(f"{dag_id} run {run.run_id} ended {run.state}; see the task logs above")
    return run.run_id


def ensure_demo_tape(settings: StressSettings, n_loans: int, seed: int) -> str:
    """The synthetic demo loan tape (generated once, seeded)."""
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book

    path = settings.resolved_loan_tape_uri
    if not os.path.exists(path):
        print(f"generating a synthetic loan book of {n_loans:,} loans (seed {seed})...", flush=True)
        write_table(generate_loan_book(n_loans, seed, DEMO_AS_OF), path, settings.aws_region)
    return path


def run_demo(n_loans: int, seed: int) -> None:
    settings = get_settings()
    started = time.perf_counter()
    prepare_airflow(settings)
    tape = ensure_demo_tape(settings, n_loans, seed)
    print("running pd_model_training (benchmark logistic and XGBoost through the promotion gate, MLflow "
          "registry) ...", flush=True)
    training_run = run_dag("pd_model_training", {})
    print(f"pd_model_training run {training_run} succeeded ({time.perf_counter() - started:.0f} s so far)")
    print_gate(training_run)
    print(f"running loan_stress_test on {tape} ...", flush=True)
    run_id = run_dag("loan_stress_test", {"source_uri": tape, "as_of_date": DEMO_AS_OF.isoformat()})
    print_summary(run_id, time.perf_counter() - started)


def print_gate(run_id: str) -> None:
    """Each candidate of the training run, the gate's verdict and its reasons."""
    from pipelines.composition import current_adapters
    from pipelines.tasks.runs import read_run_steps

    gate = read_run_steps(current_adapters().object_store, run_id)["pd_promotion"]
    for decision in gate["decisions"]:
        print(f"  gate               {decision['candidate']} v{decision['version']} ({decision['flavour']}): "
              f"{'PROMOTED' if decision['promote'] else 'not promoted'} against {decision['incumbent']}")
        for reason in decision["reasons"]:
            print(f"                       {reason}")
    champion = gate["champion"]
    held = f"v{champion['version']} ({champion['flavour']})" if champion else "none: no candidate passed the gate"
    print(f"  champion           {held}")


def print_summary(run_id: str, seconds: float) -> None:
    from pipelines.composition import current_adapters
    from pipelines.tasks.optimisation import load_allocation
    from pipelines.tasks.runs import read_run_steps

    store = current_adapters().object_store
    steps = read_run_steps(store, run_id)
    snapshot = steps["validate"]
    print()
    print(f"loan_stress_test run {run_id} succeeded in {seconds:.0f} s")
    print(f"  loan tape          {snapshot['source']}")
    print(f"  rows               {snapshot['input_rows']:,} in = {snapshot['accepted_rows']:,} accepted "
          f"+ {snapshot['quarantined_rows']:,} quarantined")
    for reason, count in list(snapshot["quarantine_reasons"].items())[:5]:
        print(f"    quarantined for {reason}: {count}")
    print(f"  snapshot           {snapshot['snapshot_id']} -> {snapshot['snapshot_uri']}")
    print(f"  quarantine         {snapshot['quarantine_uri']}")
    print(f"  GX Data Docs       {snapshot['data_docs_uri']}")
    features = steps["features"]
    print(f"  features           {features['features_uri']} (macro as of {features['macro_quarter']})")
    plan = steps["plan"]
    model = plan["pd_model"]
    print(f"  PD model           {model['name']} version {model['version']} (alias {model['alias']}, "
          f"flavour {model['flavour']})")
    print(f"    why              {model['note']}")
    print(f"  simulation         {len(plan['scenarios'])} scenarios x {len(plan['batches'])} batches, "
          f"{plan['n_paths']:,} paths, {plan['horizon']} quarters, seed {plan['seed']}")
    print()
    header = (f"  {'scenario':<34} {'9q loss USD':>14} {'loss rate':>9} {'VaR 99.9%':>14} {'ES 99%':>14} "
              f"{'CET1 start':>10} {'min CET1':>8} {'T1 lev start':>12} {'min T1 lev':>10}")
    print(header)
    for scenario_id in plan["scenarios"]:
        result = steps[f"result_{scenario_id}"]
        metrics = result["metrics"]
        capital = metrics["capital"]
        print(f"  {scenario_id:<34} {result['OverallImpact']:>14,.0f} {metrics['loss_rate']:>9.2%} "
              f"{metrics['var']['0.999']:>14,.0f} {metrics['expected_shortfall']['0.990']:>14,.0f} "
              f"{capital['cet1_ratio'][0]:>10.2%} {capital['min_cet1_ratio']:>8.2%} "
              f"{capital['tier1_leverage_ratio'][0]:>12.2%} {capital['min_tier1_leverage_ratio']:>10.2%}")
    print(f"  results            {result['AffectedLoans'].rsplit('/', 2)[0]}/<scenario>/")
    book = steps[f"result_{plan['scenarios'][0]}"]["metrics"]  # the same book in every scenario
    defaulted, warnings = book["defaulted_at_jump_off"], book["data_warnings"]
    print(f"  in default         {defaulted['loans']:,} loans 90+ days past due at jump-off, balance "
          f"{defaulted['balance']:,.0f}, lost in the first quarter (docs/default_definition.md)")
    print(f"  income missing     {warnings['income_missing_loans']:,} loans scored at the stressed DSTI")
    print_against_published_ranges([steps[f"result_{scenario_id}"] for scenario_id in plan["scenarios"]])
    for scenario_id in plan["scenarios"]:
        check = steps[f"result_{scenario_id}"]["metrics"]["self_check"]
        print(f"  self-check         {scenario_id}: Monte Carlo EL {check['el_mc']:,.0f} vs analytic "
              f"{check['el_analytic']:,.0f} (z {check['z']:+.2f}, limit {check['max_abs_z']:g}): "
              f"{'passed' if check['passed'] else 'FAILED'}")
    print_attribution(steps["attribution"])
    print_compliance(steps, store)
    print_allocation(load_allocation(store, steps["optimise"]) if "optimise" in steps else None)


def print_allocation(optimisation: dict[str, Any] | None) -> None:
    """The recommended allocation under the stress scenario, its effect and its binding constraints."""
    print()
    if optimisation is None or optimisation.get("status") != "done":
        reason = "no optimise step recorded" if optimisation is None else optimisation.get("reason")
        print(f"  allocation         not optimised: {reason}")
        return
    recommendation = optimisation["recommendation"]
    print(f"  allocation         {optimisation['recommended_strategy']} under {optimisation['scenario_id']} "
          f"(CVaR {optimisation['limits']['cvar_level']:.0%} limit {optimisation['limits']['cvar_limit']:,.0f}, "
          f"stressed CET1 >= {optimisation['limits']['required_cet1_ratio']:.2%})")
    if recommendation["status"] != "optimal":
        print(f"  INFEASIBLE         {', '.join(recommendation['conflicting'])}")
        return
    print(f"  {'segment':<26} {'current USD':>16} {'recommended USD':>16} {'change':>8}")
    for asset in recommendation["assets"]:
        change = asset["recommended"] / asset["current"] - 1 if asset["current"] else float("nan")
        print(f"  {asset['name']:<26} {asset['current']:>16,.0f} {asset['recommended']:>16,.0f} {change:>+8.1%}")
    current, new = recommendation["current"], recommendation["recommended"]
    print(f"  expected return    {current['expected_return']:,.0f} -> {new['expected_return']:,.0f}   "
          f"EL {current['expected_loss']:,.0f} -> {new['expected_loss']:,.0f}   "
          f"CVaR {current['cvar']:,.0f} -> {new['cvar']:,.0f}")
    print(f"  min stressed CET1  {current['min_cet1_ratio']:.2%} -> {new['min_cet1_ratio']:.2%}   "
          f"RAROC {current['raroc']:.2%} -> {new['raroc']:.2%}")
    for binding in sorted(recommendation["binding"], key=lambda b: -b["shadow_price"]):
        print(f"  binding            {binding['name']:<44} shadow price {binding['shadow_price']:.4g} "
              f"per dollar")


def print_against_published_ranges(results: list[dict[str, Any]]) -> None:
    """Segment loss rates beside the Fed's published ranges, then the capital paths from jump-off."""
    from pipelines.compliance.published_ranges import (
        COMPARISON_COLUMNS,
        compare_loss_rates,
        comparison_rows,
        load_published_ranges,
        ranges_note,
    )
    from pipelines.compliance.report import capital_path_columns, capital_path_rows

    published = load_published_ranges()
    print()
    widths = (30, 24, 12, 36, 18, 6)
    print("  " + " ".join(f"{name:<{width}}" for name, width in zip(COMPARISON_COLUMNS, widths, strict=True)))
    for row in comparison_rows(compare_loss_rates(results, published)):
        print("  " + " ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True)))
    print(f"  {ranges_note(published)}")
    print()
    columns = capital_path_columns(results)
    print(f"  {columns[0]:<30} {columns[1]:<16}" + "".join(f"{c:>9}" for c in columns[2:]))
    for row in capital_path_rows(results):
        print(f"  {row[0]:<30} {row[1]:<16}" + "".join(f"{c:>9}" for c in row[2:]))


def print_attribution(attribution: dict[str, Any]) -> None:
    """The change of every scenario's measures since the previous published run, as a waterfall table."""
    from pipelines.compliance import attribution_report

    print()
    if not attribution.get("previous_run_id"):
        print("  attribution        no previous run: this is the first published run, nothing to compare")
        return
    print(f"  attribution        change since run {attribution['previous_run_id']} "
          f"(data -> model -> scenario -> parameters, then the residual)")
    header = attribution_report.COLUMNS
    print(f"  {header[0]:<24} {header[1]:<19} " + " ".join(f"{h:>14}" for h in header[2:]))
    for row in attribution_report.rows(attribution):
        print(f"  {row[0]:<24} {row[1]:<19} " + " ".join(f"{cell:>14}" for cell in row[2:]))
    for scenario_id, waterfalls in attribution["scenarios"].items():
        print(f"  {scenario_id}: changed {', '.join(waterfalls['changed']) or 'nothing'}")
    if attribution.get("only_in_this_run"):
        print(f"  new scenarios, not attributed: {', '.join(attribution['only_in_this_run'])}")
    for scenario_id, reason in attribution.get("unavailable", {}).items():
        print(f"  {scenario_id} not attributed: {reason}")


def print_compliance(steps: dict[str, Any], store: ObjectStore) -> None:
    """The run's compliance table and where its report is (after the simulation summary)."""
    from pipelines.compliance.rules import format_measure
    from pipelines.tasks.compliance import load_compliance_records

    compliance = steps["compliance"]
    records = [record.to_dict() for record in load_compliance_records(store, compliance)]
    print()
    print("  compliance         " + ", ".join(f"{count} {status}" for status, count in compliance["status"].items()))
    for line in compliance["breaches"]:
        print(f"  NON-COMPLIANT      {line}")
    print(f"  {'MetricId':<26} {'MetricName':<46} {'applies to':<44} {'threshold':>9} {'actual':>9}  Status")
    for record in records:
        where = " / ".join(filter(None, (record["Scenario"], record["Segment"], record["Feature"])))
        print(f"  {record['MetricId']:<26} {record['MetricName'][:46]:<46} {where[:44]:<44} "
              f"{format_measure(record['Metric'], record['ComplianceThreshold']):>9} "
              f"{format_measure(record['Metric'], record['ActualValue']):>9}  {record['Status']}")
    for note in dict.fromkeys(r["Note"] for r in records if r["Status"] == "Not Evaluated"):
        print(f"    Not Evaluated: {note}")
    metrics = steps["metrics"]
    print(f"  metrics            {metrics['datapoints']} data points, {metrics['alarms']} alarms "
          f"({metrics['target']} target, namespace {metrics['namespace']})")
    report = steps["report"]["report"]
    print(f"  report             {report['pdf']['uri']} ({report['pdf']['pages']} pages)")
    print(f"                     {report['html']['uri']}")
