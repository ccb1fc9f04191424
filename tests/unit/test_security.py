"""Security regressions (issue 10): hostile data in published HTML, passwords in source URLs, scenario
ids as object keys, and what the stress test agrees to load from the model registry."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
# Markup from the data, if it were live: a script running alert, or any tag with an onerror handler.
LIVE_MARKUP = re.compile(r"<script>alert|<[^>]*\bonerror\s*=", re.IGNORECASE)
PASSWORD = "secret"


# --------------------------------------------------------------------------------------------------
# Stored XSS: GX Data Docs and the stress report
# --------------------------------------------------------------------------------------------------

def test_data_docs_show_hostile_values_as_text(valid_tape_rows, write_csv, tmp_path: Path) -> None:
    from pipelines.data.ingestion import ingest
    from pipelines.data.validation import validate

    rows = [dict(r) for r in valid_tape_rows]
    rows[0]["LoanId"] = rows[1]["LoanId"] = SCRIPT  # a duplicated id: listed by the uniqueness check
    rows[2]["Region"] = IMG  # not an allowed region: listed by the in-set check
    docs = tmp_path / "docs"
    # A generous duplicate tolerance keeps the duplicated pair a row fault, so the run goes on.
    outcome = validate(ingest(str(write_csv(rows, tmp_path / "tape.csv"))), duplicate_tolerance=0.5,
                       balance_tolerance=0.05, data_docs_dir=docs)

    raw_records = outcome.quarantine.column("raw_record").to_pylist()
    assert any(json.loads(r).get("LoanId") == SCRIPT for r in raw_records)  # the data itself is not altered
    assert any(json.loads(r).get("Region") == IMG for r in raw_records)
    pages = {path: path.read_text() for path in docs.rglob("*.html")}
    assert len(pages) >= 3, sorted(pages)  # index, suite and validation pages
    for path, text in pages.items():
        assert LIVE_MARKUP.search(text) is None, f"live markup from the data in {path}"
    validation = "".join(text for path, text in pages.items() if "validations" in path.parts)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in validation  # still shown, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in validation
    assert "<script" in pages[docs / "index.html"]  # GX's own scripts are kept: the docs still work


def test_the_stress_report_escapes_and_redacts(stress_result) -> None:
    from pipelines.compliance.report import ReportData, render

    result = stress_result("2026_baseline", [0.125, 0.12, 0.118, 0.117, 0.118, 0.12, 0.121, 0.122, 0.123, 0.124])
    result["provenance"]["pd_model"]["note"] = IMG
    manifest = {"snapshot_id": "snap0123456789abcdef0123", "content_sha256": "ab" * 32, "as_of": "2025-12-31",
                "source": f"postgresql://risk:{PASSWORD}@db/{SCRIPT}?table=loans",
                "input_rows": 10, "accepted_rows": 10, "quarantined_rows": 0}
    report = render(ReportData(run_id=f"manual__{SCRIPT}", manifest=manifest, results=[result], records=[],
                               capital_lines=[], generated_at=datetime(2026, 1, 5, tzinfo=UTC)))
    assert LIVE_MARKUP.search(report.html) is None
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report.html
    assert PASSWORD not in report.html
    assert "postgresql://risk:***@db/" in report.html


# --------------------------------------------------------------------------------------------------
# Credentials in source URLs
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "expected"), [
    ("postgresql://postgres:secret@127.0.0.1:5432/test?table=s.loans",
     "postgresql://postgres:***@127.0.0.1:5432/test?table=s.loans"),
    ("postgresql+psycopg://risk:p%40ss:w0rd@db.internal/book?table=loans",
     "postgresql+psycopg://risk:***@db.internal/book?table=loans"),
    ("postgresql://risk@db/book?password=secret&table=loans", "postgresql://risk@db/book?password=***&table=loans"),
    ("postgresql://db/book?table=loans&PASSWORD=secret", "postgresql://db/book?table=loans&PASSWORD=***"),
    ("postgresql://risk@db:5432/book?table=loans", "postgresql://risk@db:5432/book?table=loans"),
    ("sqlite:////data/book.db?table=loans", "sqlite:////data/book.db?table=loans"),
    ("s3://bucket/tapes/2025-12-31.csv", "s3://bucket/tapes/2025-12-31.csv"),
    ("/data/tape.csv", "/data/tape.csv"),
    ("https://bank.s3.amazonaws.com/tapes/b.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260630"
     "&X-Amz-Date=20260630T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJ"
     "&X-Amz-Signature=5ec7",
     "https://bank.s3.amazonaws.com/tapes/b.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***"
     "&X-Amz-Date=20260630T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=***"
     "&X-Amz-Signature=***"),
    ("https://bank.s3.amazonaws.com/b.csv?AWSAccessKeyId=AKIA&Expires=1751284800&Signature=abc%3D",
     "https://bank.s3.amazonaws.com/b.csv?AWSAccessKeyId=AKIA&Expires=1751284800&Signature=***"),
    ("https://api.stlouisfed.org/fred/series/observations?series_id=UNRATE&api_key=abcd1234&file_type=json",
     "https://api.stlouisfed.org/fred/series/observations?series_id=UNRATE&api_key=***&file_type=json"),
    ("https://acct.blob.core.windows.net/c/b.csv?sv=2022-11-02&sig=xyz%2B", "https://acct.blob.core.windows.net/c/b.csv?"
     "sv=2022-11-02&sig=***"),
])
def test_redact_credentials(uri: str, expected: str) -> None:
    from pipelines.data.sources import redact_credentials

    assert redact_credentials(uri) == expected
    assert redact_credentials(expected) == expected  # idempotent: a redacted source may be redacted again


def test_redact_text_redacts_every_uri_in_a_message() -> None:
    from pipelines.data.sources import redact_text

    message = ("missing \"=\" after \"postgresql://a:secret@h/db\" in connection info string; "
               "also 'sqlite:///x.db?password=secret'")
    redacted = redact_text(message)
    assert PASSWORD not in redacted
    assert "postgresql://a:***@h/db" in redacted and "sqlite:///x.db?password=***" in redacted


@pytest.fixture
def tape_in_postgres(postgres_url: str, postgres_schema: str, valid_tape_rows) -> str:
    """``schema.loan_tape`` holding the valid tape (all columns text: ingestion reads text anyway)."""
    import psycopg

    from pipelines.data.contract import COLUMN_NAMES

    name = f"{postgres_schema}.loan_tape"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        columns = ", ".join(f'"{n}" TEXT' for n in COLUMN_NAMES)
        connection.execute(f"CREATE TABLE {name} ({columns})")
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {name} VALUES ({', '.join(['%s'] * len(COLUMN_NAMES))})",
                               [[r[n] or None for n in COLUMN_NAMES] for r in valid_tape_rows])
    return name


def _with_password(postgres_url: str) -> str:
    """The test server's URL with a password (the server trusts local connections, whatever the password)."""
    assert postgres_url.startswith("postgresql://postgres@")
    return postgres_url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def _files_holding(root: Path, text: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and text.encode() in path.read_bytes()]


@pytest.mark.postgres
def test_a_password_in_the_source_url_is_never_recorded(tape_in_postgres: str, postgres_url: str, settings,
                                                       monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    from pipelines.composition import current_adapters
    from pipelines.settings import get_settings
    from pipelines.tasks import loan_tape
    from pipelines.tasks.runs import read_run_steps

    monkeypatch.setenv("STRESS_DATA_HOME", str(settings.data_home))
    get_settings.cache_clear()
    source = f"{_with_password(postgres_url)}?table={tape_in_postgres}"
    run_id = "manual__security"
    caplog.set_level("INFO")
    staged = loan_tape.ingest(source, "2025-12-31", run_id)
    manifest = loan_tape.validate(staged, run_id)

    shown = source.replace(f":{PASSWORD}@", ":***@")
    assert staged["source"] == manifest["source"] == shown  # what XCom carries
    assert manifest["accepted_rows"] == staged["input_rows"] > 0  # the real password still connected
    steps = read_run_steps(current_adapters().object_store, run_id)
    assert {"ingest", "validate"} <= set(steps) and PASSWORD not in json.dumps(steps)
    # Object store (staging, steps, snapshot, manifest, Data Docs) and the SQLite loan store alike.
    assert _files_holding(settings.data_home, PASSWORD) == []
    assert PASSWORD not in caplog.text


@pytest.mark.postgres
@pytest.mark.parametrize("query", ["", "?table=no_such_schema.no_such_table"])
def test_errors_of_a_failing_source_do_not_show_its_password(query: str, postgres_url: str, settings,
                                                            monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.cli.main import main
    from pipelines.data.ingestion import TableContractError, ingest
    from pipelines.settings import get_settings
    from pipelines.tasks import loan_tape

    source = f"{_with_password(postgres_url)}{query}"
    with pytest.raises(TableContractError) as direct:
        ingest(source)
    assert PASSWORD not in str(direct.value)

    monkeypatch.setenv("STRESS_DATA_HOME", str(settings.data_home))
    get_settings.cache_clear()
    with pytest.raises(AirflowFailException) as task:
        loan_tape.ingest(source, "2025-12-31", "manual__failing")
    assert PASSWORD not in str(task.value)
    with pytest.raises(SystemExit):
        main(["ingest", source, "--as-of", "2025-12-31"])
    output = capsys.readouterr()
    assert "cannot read table" in output.err or "names no table" in output.err
    assert PASSWORD not in output.err + output.out


def test_the_history_source_is_recorded_without_its_password(settings, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    from pipelines.composition import current_adapters
    from pipelines.data.synthetic import generate_performance_history
    from pipelines.settings import get_settings
    from pipelines.tasks.runs import read_run_steps
    from pipelines.tasks.training import ingest_history

    path = tmp_path / "history.parquet"
    generate_performance_history(50, seed=3).to_parquet(path)
    monkeypatch.setenv("STRESS_DATA_HOME", str(settings.data_home))
    get_settings.cache_clear()
    recorded = ingest_history(f"file://risk:{PASSWORD}@localhost{path}", "manual__history")
    assert recorded["provenance"]["source"] == f"file://risk:***@localhost{path}"
    assert PASSWORD not in json.dumps(read_run_steps(current_adapters().object_store, "manual__history"))


# --------------------------------------------------------------------------------------------------
# Scenario ids and object keys
# --------------------------------------------------------------------------------------------------

SCENARIO = "description: d\nbase: 2026_baseline\nhorizon_quarters: 9\nshocks: []\n"


@pytest.mark.parametrize(("yaml_id", "scenario_id"), [
    ("../../../snapshots/abc/manifest", "../../../snapshots/abc/manifest"), ("/etc/passwd", "/etc/passwd"),
    ("Rate_Hike", "Rate_Hike"), ("''", ""), ("a" * 65, "a" * 65), ("_hidden", "_hidden"), ("a/b", "a/b"),
    ("12", 12),  # YAML reads it as a number: an id is text
])
def test_a_custom_scenario_id_must_be_a_plain_name(yaml_id: str, scenario_id: object, tmp_path: Path) -> None:
    from pipelines.data.macro import load_history
    from pipelines.engine.scenarios import ScenarioError, load_custom

    path = tmp_path / "hostile.yaml"
    path.write_text(f"id: {yaml_id}\n{SCENARIO}")
    with pytest.raises(ScenarioError, match=r"scenario id .* is not allowed") as error:
        load_custom(path, load_history())
    assert str(path) in str(error.value) and repr(scenario_id) in str(error.value)


def test_a_plain_scenario_id_loads(tmp_path: Path) -> None:
    from pipelines.data.macro import load_history
    from pipelines.engine.scenarios import load_custom

    path = tmp_path / "ok.yaml"
    path.write_text(f"id: rate-hike_2{'x' * 53}\n{SCENARIO}")
    assert load_custom(path, load_history()).scenario_id == f"rate-hike_2{'x' * 53}"


@pytest.mark.parametrize("key", ["runs/r/scenarios/../../../snapshots/s/manifest.json", "/snapshots/s/manifest.json",
                                 "..", "runs/../x"])
def test_object_stores_refuse_keys_that_leave_their_place(key: str, tmp_path: Path) -> None:
    from pipelines.adapters.object_store import LocalObjectStore, S3ObjectStore

    s3 = S3ObjectStore("bucket", "prefix", "us-east-1")  # the key is refused before any request is made
    local = LocalObjectStore(tmp_path / "store")
    for store in (s3, local):
        for call in (lambda s: s.put_bytes(key, b"x"), lambda s: s.get_bytes(key), lambda s: s.exists(key)):
            with pytest.raises(ValueError, match="not allowed"):
                call(store)
    assert not (tmp_path / "snapshots").exists()


# --------------------------------------------------------------------------------------------------
# The champion: promoted, untampered, loaded as data
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    from models.feature_spec import load_feature_spec
    from models.pd_xgboost import XGBoostPD
    from pipelines.data.synthetic import generate_performance_history
    from pipelines.model.training import out_of_time_split, point_in_time_dataset

    spec = load_feature_spec()
    split = out_of_time_split(point_in_time_dataset(generate_performance_history(1500, seed=5), spec), spec, 8)
    return split, XGBoostPD(spec, time_column=spec.date_column, n_candidates=1, n_jobs=1,
                            random_state=1).fit(split.train, split.train[spec.target])


@pytest.fixture
def registered(trained, settings, tmp_path: Path):
    """The trained model registered as version 1 of a fresh SQLite registry, before any gate decision."""
    from pipelines.composition import build_adapters
    from pipelines.model.training import evaluate

    split, model = trained
    settings = settings.model_copy(update={"promotion_auc_margin": 0.0, "promotion_min_calibrated_band_share": 0.0,
                                           "promotion_brier_tolerance": 1.0, "promotion_max_mean_pd_ratio": 100.0})
    registry = build_adapters(settings).model_registry
    evaluation = evaluate(split, model.spec, model, {"xgboost": model.predict_pd(split.test)}, 0.01)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "model_card.md").write_text("# card\n")
    registry.log_and_register(model, model.spec, "xgboost", evaluation, tmp_path / "report", split.test.head(5),
                              {"source": "synthetic", "data_sha256": "ab" * 32, "airflow_run_id": "run-1",
                               "code_version": "unknown"}, "run-1")
    return registry, settings


def _gate(registry, settings, trained, promote: bool) -> None:
    """Run the real promotion gate on version 1: with no champion it judges calibration only, so a required
    calibrated share above 100 % makes it reject the version, and none makes it promote it."""
    from pipelines.model.promotion import PromotionPolicy, run_promotion_gate

    policy = PromotionPolicy.from_settings(settings.model_copy(update={
        "promotion_min_calibrated_band_share": 0.0 if promote else 1.01}))
    split, model = trained
    (decision,) = run_promotion_gate(registry, ["1"], split.test, model.spec.target, policy,
                                     context={"airflow_run_id": "test"})
    assert decision.promote is promote, decision.reasons


def test_a_promoted_untampered_champion_loads_and_predicts_identically(registered, trained) -> None:
    import hashlib

    from pipelines.adapters.model_registry import MODEL_SHA256_TAG, load_quarterly_pd_function

    registry, settings = registered
    split, model = trained
    version = registry.client().get_model_version(registry.model_name, "1")
    assert version.tags[MODEL_SHA256_TAG] == hashlib.sha256(model.dumps()).hexdigest()
    _gate(registry, settings, trained, promote=True)
    pd_function = load_quarterly_pd_function(registry.champion_info())
    np.testing.assert_array_equal(pd_function(split.test), model.predict_quarterly(split.test))


def test_a_tampered_model_artifact_is_refused(registered, trained) -> None:
    from pipelines.adapters.model_registry import MODEL_FILE, UntrustedModel, load_quarterly_pd_function

    registry, settings = registered
    _gate(registry, settings, trained, promote=True)
    (artifact,) = [p for p in settings.data_home.rglob(MODEL_FILE) if p.parent.name == "artifacts"]
    document = json.loads(artifact.read_bytes())
    document["calibration"]["intercept"] += 5.0
    artifact.write_text(json.dumps(document))
    with pytest.raises(UntrustedModel, match=r"version 1 .*SHA-256 .*\(the artifact was changed\)"):
        load_quarterly_pd_function(registry.champion_info())


def test_the_champion_alias_moved_to_a_rejected_version_is_refused(registered, trained) -> None:
    from pipelines.adapters.model_registry import CHAMPION, UntrustedModel, load_quarterly_pd_function

    registry, settings = registered
    _gate(registry, settings, trained, promote=False)
    registry.client().set_registered_model_alias(registry.model_name, CHAMPION, "1")  # moved by hand
    with pytest.raises(UntrustedModel, match=r"version 1 .*'rejected', not 'promoted'"):
        load_quarterly_pd_function(registry.champion_info())


def test_a_version_without_a_gate_decision_is_refused(registered) -> None:
    from pipelines.adapters.model_registry import CHAMPION, UntrustedModel, load_quarterly_pd_function

    registry, _ = registered
    registry.client().set_registered_model_alias(registry.model_name, CHAMPION, "1")
    with pytest.raises(UntrustedModel, match=r"version 1 .*None, not 'promoted'"):
        load_quarterly_pd_function(registry.champion_info())


def test_a_champion_registered_without_its_hash_is_refused_until_retrained(registered, trained) -> None:
    from pipelines.adapters.model_registry import MODEL_SHA256_TAG, UntrustedModel, load_quarterly_pd_function

    registry, settings = registered
    _gate(registry, settings, trained, promote=True)
    registry.client().delete_model_version_tag(registry.model_name, "1", MODEL_SHA256_TAG)  # an older release
    with pytest.raises(UntrustedModel) as refused:
        load_quarterly_pd_function(registry.champion_info())
    message = str(refused.value)
    assert "version 1 is not loaded: it has no model_sha256 tag" in message
    assert "registered by an earlier release, before the SHA-256 and the flavour of the model artifact" in message
    assert "refused until a retrained version replaces it" in message
    assert "`airflow dags trigger pd_model_training`" in message and "`make demo`" in message
