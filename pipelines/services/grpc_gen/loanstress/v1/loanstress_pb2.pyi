from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoanRequest(_message.Message):
    __slots__ = ("loan_id",)
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    def __init__(self, loan_id: _Optional[str] = ...) -> None: ...

class LoanDetails(_message.Message):
    __slots__ = ("loan_id", "customer_id", "loan_amount", "interest_rate", "loan_start_date", "loan_maturity_date", "loan_type", "repayment_schedule", "current_balance", "default_risk_score", "rate_type", "reference_index", "rate_margin", "borrower_income", "credit_score", "collateral_value", "region", "product_segment", "days_past_due", "snapshot_id", "version", "etag", "pending_amendment_ids")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INTEREST_RATE_FIELD_NUMBER: _ClassVar[int]
    LOAN_START_DATE_FIELD_NUMBER: _ClassVar[int]
    LOAN_MATURITY_DATE_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    REPAYMENT_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_BALANCE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_RISK_SCORE_FIELD_NUMBER: _ClassVar[int]
    RATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    RATE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    BORROWER_INCOME_FIELD_NUMBER: _ClassVar[int]
    CREDIT_SCORE_FIELD_NUMBER: _ClassVar[int]
    COLLATERAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    PENDING_AMENDMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    customer_id: str
    loan_amount: str
    interest_rate: str
    loan_start_date: str
    loan_maturity_date: str
    loan_type: str
    repayment_schedule: str
    current_balance: str
    default_risk_score: str
    rate_type: str
    reference_index: str
    rate_margin: str
    borrower_income: str
    credit_score: int
    collateral_value: str
    region: str
    product_segment: str
    days_past_due: int
    snapshot_id: str
    version: int
    etag: str
    pending_amendment_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, loan_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., loan_amount: _Optional[str] = ..., interest_rate: _Optional[str] = ..., loan_start_date: _Optional[str] = ..., loan_maturity_date: _Optional[str] = ..., loan_type: _Optional[str] = ..., repayment_schedule: _Optional[str] = ..., current_balance: _Optional[str] = ..., default_risk_score: _Optional[str] = ..., rate_type: _Optional[str] = ..., reference_index: _Optional[str] = ..., rate_margin: _Optional[str] = ..., borrower_income: _Optional[str] = ..., credit_score: _Optional[int] = ..., collateral_value: _Optional[str] = ..., region: _Optional[str] = ..., product_segment: _Optional[str] = ..., days_past_due: _Optional[int] = ..., snapshot_id: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ..., pending_amendment_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LoanUpdateRequest(_message.Message):
    __slots__ = ("loan_id", "new_interest_rate", "etag", "new_rate_margin", "new_current_balance", "new_default_risk_score", "new_collateral_value", "new_days_past_due", "clear_fields", "reason")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_INTEREST_RATE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    NEW_RATE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    NEW_CURRENT_BALANCE_FIELD_NUMBER: _ClassVar[int]
    NEW_DEFAULT_RISK_SCORE_FIELD_NUMBER: _ClassVar[int]
    NEW_COLLATERAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    NEW_DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    new_interest_rate: str
    etag: str
    new_rate_margin: str
    new_current_balance: str
    new_default_risk_score: str
    new_collateral_value: str
    new_days_past_due: int
    clear_fields: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, loan_id: _Optional[str] = ..., new_interest_rate: _Optional[str] = ..., etag: _Optional[str] = ..., new_rate_margin: _Optional[str] = ..., new_current_balance: _Optional[str] = ..., new_default_risk_score: _Optional[str] = ..., new_collateral_value: _Optional[str] = ..., new_days_past_due: _Optional[int] = ..., clear_fields: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateResponse(_message.Message):
    __slots__ = ("success", "message", "amendment_id", "loan")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AMENDMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    amendment_id: str
    loan: LoanDetails
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ..., amendment_id: _Optional[str] = ..., loan: _Optional[_Union[LoanDetails, _Mapping]] = ...) -> None: ...

class SimulationRequest(_message.Message):
    __slots__ = ("scenario_description", "interest_rate_scenario", "scenario_ids", "horizon_quarters", "n_paths", "seed", "as_of_date")
    SCENARIO_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INTEREST_RATE_SCENARIO_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_IDS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_QUARTERS_FIELD_NUMBER: _ClassVar[int]
    N_PATHS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    AS_OF_DATE_FIELD_NUMBER: _ClassVar[int]
    scenario_description: str
    interest_rate_scenario: str
    scenario_ids: _containers.RepeatedScalarFieldContainer[str]
    horizon_quarters: int
    n_paths: int
    seed: int
    as_of_date: str
    def __init__(self, scenario_description: _Optional[str] = ..., interest_rate_scenario: _Optional[str] = ..., scenario_ids: _Optional[_Iterable[str]] = ..., horizon_quarters: _Optional[int] = ..., n_paths: _Optional[int] = ..., seed: _Optional[int] = ..., as_of_date: _Optional[str] = ...) -> None: ...

class GetSimulationRequest(_message.Message):
    __slots__ = ("simulation_id", "page_size", "page_token")
    SIMULATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    simulation_id: str
    page_size: int
    page_token: str
    def __init__(self, simulation_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AffectedLoan(_message.Message):
    __slots__ = ("loan_id", "projected_default_risk", "projected_balance")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_DEFAULT_RISK_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_BALANCE_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    projected_default_risk: str
    projected_balance: str
    def __init__(self, loan_id: _Optional[str] = ..., projected_default_risk: _Optional[str] = ..., projected_balance: _Optional[str] = ...) -> None: ...

class SegmentResult(_message.Message):
    __slots__ = ("segment", "exposure", "expected_loss", "loss_rate")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LOSS_FIELD_NUMBER: _ClassVar[int]
    LOSS_RATE_FIELD_NUMBER: _ClassVar[int]
    segment: str
    exposure: str
    expected_loss: str
    loss_rate: str
    def __init__(self, segment: _Optional[str] = ..., exposure: _Optional[str] = ..., expected_loss: _Optional[str] = ..., loss_rate: _Optional[str] = ...) -> None: ...

class LoanResult(_message.Message):
    __slots__ = ("loan_id", "product_segment", "projected_default_risk", "projected_balance", "expected_loss", "quarterly_pd", "quarterly_balance")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_DEFAULT_RISK_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_BALANCE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LOSS_FIELD_NUMBER: _ClassVar[int]
    QUARTERLY_PD_FIELD_NUMBER: _ClassVar[int]
    QUARTERLY_BALANCE_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    product_segment: str
    projected_default_risk: str
    projected_balance: str
    expected_loss: str
    quarterly_pd: _containers.RepeatedScalarFieldContainer[str]
    quarterly_balance: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, loan_id: _Optional[str] = ..., product_segment: _Optional[str] = ..., projected_default_risk: _Optional[str] = ..., projected_balance: _Optional[str] = ..., expected_loss: _Optional[str] = ..., quarterly_pd: _Optional[_Iterable[str]] = ..., quarterly_balance: _Optional[_Iterable[str]] = ...) -> None: ...

class ScenarioResult(_message.Message):
    __slots__ = ("simulation_id", "scenario_id", "scenario_description", "interest_rate_scenario", "start_date", "end_date", "affected_loans", "overall_impact", "airflow_run_id", "snapshot_id", "loans", "exposure", "loss_rate", "var_999", "expected_shortfall_99", "min_cet1_ratio", "segment", "loan")
    SIMULATION_ID_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_ID_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INTEREST_RATE_SCENARIO_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_LOANS_FIELD_NUMBER: _ClassVar[int]
    OVERALL_IMPACT_FIELD_NUMBER: _ClassVar[int]
    AIRFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    LOANS_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    LOSS_RATE_FIELD_NUMBER: _ClassVar[int]
    VAR_999_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHORTFALL_99_FIELD_NUMBER: _ClassVar[int]
    MIN_CET1_RATIO_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    LOAN_FIELD_NUMBER: _ClassVar[int]
    simulation_id: str
    scenario_id: str
    scenario_description: str
    interest_rate_scenario: str
    start_date: str
    end_date: str
    affected_loans: _containers.RepeatedCompositeFieldContainer[AffectedLoan]
    overall_impact: str
    airflow_run_id: str
    snapshot_id: str
    loans: int
    exposure: str
    loss_rate: str
    var_999: str
    expected_shortfall_99: str
    min_cet1_ratio: str
    segment: SegmentResult
    loan: LoanResult
    def __init__(self, simulation_id: _Optional[str] = ..., scenario_id: _Optional[str] = ..., scenario_description: _Optional[str] = ..., interest_rate_scenario: _Optional[str] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., affected_loans: _Optional[_Iterable[_Union[AffectedLoan, _Mapping]]] = ..., overall_impact: _Optional[str] = ..., airflow_run_id: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., loans: _Optional[int] = ..., exposure: _Optional[str] = ..., loss_rate: _Optional[str] = ..., var_999: _Optional[str] = ..., expected_shortfall_99: _Optional[str] = ..., min_cet1_ratio: _Optional[str] = ..., segment: _Optional[_Union[SegmentResult, _Mapping]] = ..., loan: _Optional[_Union[LoanResult, _Mapping]] = ...) -> None: ...

class SimulationResult(_message.Message):
    __slots__ = ("simulation_id", "status", "scenario_description", "interest_rate_scenario", "airflow_run_id", "error", "results", "next_page_token", "created_at", "updated_at")
    SIMULATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INTEREST_RATE_SCENARIO_FIELD_NUMBER: _ClassVar[int]
    AIRFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    simulation_id: str
    status: str
    scenario_description: str
    interest_rate_scenario: str
    airflow_run_id: str
    error: str
    results: _containers.RepeatedCompositeFieldContainer[ScenarioResult]
    next_page_token: str
    created_at: str
    updated_at: str
    def __init__(self, simulation_id: _Optional[str] = ..., status: _Optional[str] = ..., scenario_description: _Optional[str] = ..., interest_rate_scenario: _Optional[str] = ..., airflow_run_id: _Optional[str] = ..., error: _Optional[str] = ..., results: _Optional[_Iterable[_Union[ScenarioResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("airflow_run_id", "status", "published_at", "simulations")
    class SimulationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AIRFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    SIMULATIONS_FIELD_NUMBER: _ClassVar[int]
    airflow_run_id: str
    status: str
    published_at: str
    simulations: _containers.ScalarMap[str, str]
    def __init__(self, airflow_run_id: _Optional[str] = ..., status: _Optional[str] = ..., published_at: _Optional[str] = ..., simulations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class ResultsRequest(_message.Message):
    __slots__ = ("run_id", "scenario_id", "segment", "loan_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    scenario_id: str
    segment: str
    loan_id: str
    def __init__(self, run_id: _Optional[str] = ..., scenario_id: _Optional[str] = ..., segment: _Optional[str] = ..., loan_id: _Optional[str] = ...) -> None: ...

class ResultsResponse(_message.Message):
    __slots__ = ("run_id", "results")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    results: _containers.RepeatedCompositeFieldContainer[ScenarioResult]
    def __init__(self, run_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[ScenarioResult, _Mapping]]] = ...) -> None: ...

class AllocationRequest(_message.Message):
    __slots__ = ("run_id", "strategy")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    strategy: str
    def __init__(self, run_id: _Optional[str] = ..., strategy: _Optional[str] = ...) -> None: ...

class AllocationAsset(_message.Message):
    __slots__ = ("name", "segment", "current", "recommended", "cvar_contribution")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    CVAR_CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    segment: str
    current: str
    recommended: str
    cvar_contribution: str
    def __init__(self, name: _Optional[str] = ..., segment: _Optional[str] = ..., current: _Optional[str] = ..., recommended: _Optional[str] = ..., cvar_contribution: _Optional[str] = ...) -> None: ...

class PortfolioMeasures(_message.Message):
    __slots__ = ("exposure", "expected_return", "expected_loss", "cvar", "economic_capital", "raroc", "min_cet1_ratio", "min_cet1_quarter")
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_RETURN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LOSS_FIELD_NUMBER: _ClassVar[int]
    CVAR_FIELD_NUMBER: _ClassVar[int]
    ECONOMIC_CAPITAL_FIELD_NUMBER: _ClassVar[int]
    RAROC_FIELD_NUMBER: _ClassVar[int]
    MIN_CET1_RATIO_FIELD_NUMBER: _ClassVar[int]
    MIN_CET1_QUARTER_FIELD_NUMBER: _ClassVar[int]
    exposure: str
    expected_return: str
    expected_loss: str
    cvar: str
    economic_capital: str
    raroc: str
    min_cet1_ratio: str
    min_cet1_quarter: int
    def __init__(self, exposure: _Optional[str] = ..., expected_return: _Optional[str] = ..., expected_loss: _Optional[str] = ..., cvar: _Optional[str] = ..., economic_capital: _Optional[str] = ..., raroc: _Optional[str] = ..., min_cet1_ratio: _Optional[str] = ..., min_cet1_quarter: _Optional[int] = ...) -> None: ...

class BindingConstraint(_message.Message):
    __slots__ = ("name", "family", "shadow_price", "objective")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    SHADOW_PRICE_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    family: str
    shadow_price: str
    objective: str
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., shadow_price: _Optional[str] = ..., objective: _Optional[str] = ...) -> None: ...

class FrontierPoint(_message.Message):
    __slots__ = ("cvar", "expected_return")
    CVAR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_RETURN_FIELD_NUMBER: _ClassVar[int]
    cvar: str
    expected_return: str
    def __init__(self, cvar: _Optional[str] = ..., expected_return: _Optional[str] = ...) -> None: ...

class AllocationLimits(_message.Message):
    __slots__ = ("budget", "cvar_level", "cvar_limit", "economic_capital_level", "required_cet1_ratio", "concentration")
    class ConcentrationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    CVAR_LEVEL_FIELD_NUMBER: _ClassVar[int]
    CVAR_LIMIT_FIELD_NUMBER: _ClassVar[int]
    ECONOMIC_CAPITAL_LEVEL_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CET1_RATIO_FIELD_NUMBER: _ClassVar[int]
    CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    budget: str
    cvar_level: str
    cvar_limit: str
    economic_capital_level: str
    required_cet1_ratio: str
    concentration: _containers.ScalarMap[str, str]
    def __init__(self, budget: _Optional[str] = ..., cvar_level: _Optional[str] = ..., cvar_limit: _Optional[str] = ..., economic_capital_level: _Optional[str] = ..., required_cet1_ratio: _Optional[str] = ..., concentration: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Allocation(_message.Message):
    __slots__ = ("run_id", "scenario_id", "baseline_scenario", "strategy", "recommended_strategy", "status", "message", "conflicting", "assets", "current", "recommended", "change", "binding", "frontier", "limits")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_ID_FIELD_NUMBER: _ClassVar[int]
    BASELINE_SCENARIO_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CONFLICTING_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    FRONTIER_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    scenario_id: str
    baseline_scenario: str
    strategy: str
    recommended_strategy: str
    status: str
    message: str
    conflicting: _containers.RepeatedScalarFieldContainer[str]
    assets: _containers.RepeatedCompositeFieldContainer[AllocationAsset]
    current: PortfolioMeasures
    recommended: PortfolioMeasures
    change: PortfolioMeasures
    binding: _containers.RepeatedCompositeFieldContainer[BindingConstraint]
    frontier: _containers.RepeatedCompositeFieldContainer[FrontierPoint]
    limits: AllocationLimits
    def __init__(self, run_id: _Optional[str] = ..., scenario_id: _Optional[str] = ..., baseline_scenario: _Optional[str] = ..., strategy: _Optional[str] = ..., recommended_strategy: _Optional[str] = ..., status: _Optional[str] = ..., message: _Optional[str] = ..., conflicting: _Optional[_Iterable[str]] = ..., assets: _Optional[_Iterable[_Union[AllocationAsset, _Mapping]]] = ..., current: _Optional[_Union[PortfolioMeasures, _Mapping]] = ..., recommended: _Optional[_Union[PortfolioMeasures, _Mapping]] = ..., change: _Optional[_Union[PortfolioMeasures, _Mapping]] = ..., binding: _Optional[_Iterable[_Union[BindingConstraint, _Mapping]]] = ..., frontier: _Optional[_Iterable[_Union[FrontierPoint, _Mapping]]] = ..., limits: _Optional[_Union[AllocationLimits, _Mapping]] = ...) -> None: ...

class ComplianceRequest(_message.Message):
    __slots__ = ("metric_id",)
    METRIC_ID_FIELD_NUMBER: _ClassVar[int]
    metric_id: str
    def __init__(self, metric_id: _Optional[str] = ...) -> None: ...

class ComplianceCheck(_message.Message):
    __slots__ = ("status", "compliance_threshold", "actual_value", "scenario", "segment", "feature", "note")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    status: str
    compliance_threshold: str
    actual_value: str
    scenario: str
    segment: str
    feature: str
    note: str
    def __init__(self, status: _Optional[str] = ..., compliance_threshold: _Optional[str] = ..., actual_value: _Optional[str] = ..., scenario: _Optional[str] = ..., segment: _Optional[str] = ..., feature: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ComplianceStatus(_message.Message):
    __slots__ = ("metric_id", "status", "message", "metric_name", "compliance_threshold", "actual_value", "scenario", "run_id", "evaluated_at", "records")
    METRIC_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METRIC_NAME_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    metric_id: str
    status: str
    message: str
    metric_name: str
    compliance_threshold: str
    actual_value: str
    scenario: str
    run_id: str
    evaluated_at: str
    records: _containers.RepeatedCompositeFieldContainer[ComplianceCheck]
    def __init__(self, metric_id: _Optional[str] = ..., status: _Optional[str] = ..., message: _Optional[str] = ..., metric_name: _Optional[str] = ..., compliance_threshold: _Optional[str] = ..., actual_value: _Optional[str] = ..., scenario: _Optional[str] = ..., run_id: _Optional[str] = ..., evaluated_at: _Optional[str] = ..., records: _Optional[_Iterable[_Union[ComplianceCheck, _Mapping]]] = ...) -> None: ...
