from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("name", "env_version", "protocol_version", "description", "instruction", "action_grammar", "features", "catalogue", "worker")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENV_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_GRAMMAR_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    name: str
    env_version: str
    protocol_version: str
    description: str
    instruction: str
    action_grammar: str
    features: Features
    catalogue: Catalogue
    worker: Worker
    def __init__(self, name: _Optional[str] = ..., env_version: _Optional[str] = ..., protocol_version: _Optional[str] = ..., description: _Optional[str] = ..., instruction: _Optional[str] = ..., action_grammar: _Optional[str] = ..., features: _Optional[_Union[Features, _Mapping]] = ..., catalogue: _Optional[_Union[Catalogue, _Mapping]] = ..., worker: _Optional[_Union[Worker, _Mapping]] = ...) -> None: ...

class Worker(_message.Message):
    __slots__ = ("index", "count")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    index: int
    count: int
    def __init__(self, index: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class Features(_message.Message):
    __slots__ = ("provides_valid_actions", "provides_expert", "default_max_turns", "max_turns_limit", "reward_min", "reward_max", "max_action_bytes", "max_sessions", "session_ttl_seconds")
    PROVIDES_VALID_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    PROVIDES_EXPERT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    REWARD_MIN_FIELD_NUMBER: _ClassVar[int]
    REWARD_MAX_FIELD_NUMBER: _ClassVar[int]
    MAX_ACTION_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    SESSION_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    provides_valid_actions: bool
    provides_expert: bool
    default_max_turns: int
    max_turns_limit: int
    reward_min: float
    reward_max: float
    max_action_bytes: int
    max_sessions: int
    session_ttl_seconds: int
    def __init__(self, provides_valid_actions: _Optional[bool] = ..., provides_expert: _Optional[bool] = ..., default_max_turns: _Optional[int] = ..., max_turns_limit: _Optional[int] = ..., reward_min: _Optional[float] = ..., reward_max: _Optional[float] = ..., max_action_bytes: _Optional[int] = ..., max_sessions: _Optional[int] = ..., session_ttl_seconds: _Optional[int] = ...) -> None: ...

class Catalogue(_message.Message):
    __slots__ = ("splits", "difficulties", "categories", "counts")
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTIES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    splits: _containers.RepeatedScalarFieldContainer[str]
    difficulties: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    counts: _containers.RepeatedCompositeFieldContainer[CatalogueCount]
    def __init__(self, splits: _Optional[_Iterable[str]] = ..., difficulties: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., counts: _Optional[_Iterable[_Union[CatalogueCount, _Mapping]]] = ...) -> None: ...

class CatalogueCount(_message.Message):
    __slots__ = ("split", "difficulty", "category", "count")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    split: str
    difficulty: str
    category: str
    count: int
    def __init__(self, split: _Optional[str] = ..., difficulty: _Optional[str] = ..., category: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "split", "difficulty", "category", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    split: str
    difficulty: str
    category: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., split: _Optional[str] = ..., difficulty: _Optional[str] = ..., category: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("split", "difficulty", "category", "page_size", "page_token")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    split: str
    difficulty: str
    category: str
    page_size: int
    page_token: str
    def __init__(self, split: _Optional[str] = ..., difficulty: _Optional[str] = ..., category: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token", "total_size")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    next_page_token: str
    total_size: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class TaskSample(_message.Message):
    __slots__ = ("split", "difficulty", "category", "seed")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    split: str
    difficulty: str
    category: str
    seed: int
    def __init__(self, split: _Optional[str] = ..., difficulty: _Optional[str] = ..., category: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class ResetOptions(_message.Message):
    __slots__ = ("include_valid_actions", "max_turns")
    INCLUDE_VALID_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    include_valid_actions: bool
    max_turns: int
    def __init__(self, include_valid_actions: _Optional[bool] = ..., max_turns: _Optional[int] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ("task_id", "sample", "options")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    sample: TaskSample
    options: ResetOptions
    def __init__(self, task_id: _Optional[str] = ..., sample: _Optional[_Union[TaskSample, _Mapping]] = ..., options: _Optional[_Union[ResetOptions, _Mapping]] = ...) -> None: ...

class ResetResponse(_message.Message):
    __slots__ = ("session_id", "task", "observation")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    task: Task
    observation: Observation
    def __init__(self, session_id: _Optional[str] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., observation: _Optional[_Union[Observation, _Mapping]] = ...) -> None: ...

class StepRequest(_message.Message):
    __slots__ = ("session_id", "action", "step_index")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    action: str
    step_index: int
    def __init__(self, session_id: _Optional[str] = ..., action: _Optional[str] = ..., step_index: _Optional[int] = ...) -> None: ...

class StepResponse(_message.Message):
    __slots__ = ("observation",)
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    observation: Observation
    def __init__(self, observation: _Optional[_Union[Observation, _Mapping]] = ...) -> None: ...

class Observation(_message.Message):
    __slots__ = ("text", "reward", "terminated", "truncated", "success", "action_valid", "parsed_action", "valid_actions", "valid_actions_included", "turn", "info", "state_key")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ACTION_VALID_FIELD_NUMBER: _ClassVar[int]
    PARSED_ACTION_FIELD_NUMBER: _ClassVar[int]
    VALID_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    VALID_ACTIONS_INCLUDED_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    STATE_KEY_FIELD_NUMBER: _ClassVar[int]
    text: str
    reward: float
    terminated: bool
    truncated: bool
    success: bool
    action_valid: bool
    parsed_action: str
    valid_actions: _containers.RepeatedScalarFieldContainer[str]
    valid_actions_included: bool
    turn: int
    info: _struct_pb2.Struct
    state_key: str
    def __init__(self, text: _Optional[str] = ..., reward: _Optional[float] = ..., terminated: _Optional[bool] = ..., truncated: _Optional[bool] = ..., success: _Optional[bool] = ..., action_valid: _Optional[bool] = ..., parsed_action: _Optional[str] = ..., valid_actions: _Optional[_Iterable[str]] = ..., valid_actions_included: _Optional[bool] = ..., turn: _Optional[int] = ..., info: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., state_key: _Optional[str] = ...) -> None: ...

class ValidActionsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ValidActionsResponse(_message.Message):
    __slots__ = ("provided", "actions")
    PROVIDED_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    provided: bool
    actions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, provided: _Optional[bool] = ..., actions: _Optional[_Iterable[str]] = ...) -> None: ...

class ExpertActionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ExpertActionResponse(_message.Message):
    __slots__ = ("provided", "action")
    PROVIDED_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    provided: bool
    action: str
    def __init__(self, provided: _Optional[bool] = ..., action: _Optional[str] = ...) -> None: ...

class CloseRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseResponse(_message.Message):
    __slots__ = ("was_open",)
    WAS_OPEN_FIELD_NUMBER: _ClassVar[int]
    was_open: bool
    def __init__(self, was_open: _Optional[bool] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("reset", "step", "valid_actions", "expert_action", "close")
    RESET_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALID_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    EXPERT_ACTION_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    reset: ResetRequest
    step: StepRequest
    valid_actions: ValidActionsRequest
    expert_action: ExpertActionRequest
    close: CloseRequest
    def __init__(self, reset: _Optional[_Union[ResetRequest, _Mapping]] = ..., step: _Optional[_Union[StepRequest, _Mapping]] = ..., valid_actions: _Optional[_Union[ValidActionsRequest, _Mapping]] = ..., expert_action: _Optional[_Union[ExpertActionRequest, _Mapping]] = ..., close: _Optional[_Union[CloseRequest, _Mapping]] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("reset", "step", "valid_actions", "expert_action", "close", "error")
    RESET_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALID_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    EXPERT_ACTION_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    reset: ResetResponse
    step: StepResponse
    valid_actions: ValidActionsResponse
    expert_action: ExpertActionResponse
    close: CloseResponse
    error: Error
    def __init__(self, reset: _Optional[_Union[ResetResponse, _Mapping]] = ..., step: _Optional[_Union[StepResponse, _Mapping]] = ..., valid_actions: _Optional[_Union[ValidActionsResponse, _Mapping]] = ..., expert_action: _Optional[_Union[ExpertActionResponse, _Mapping]] = ..., close: _Optional[_Union[CloseResponse, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class MultiplexRequest(_message.Message):
    __slots__ = ("ops",)
    OPS_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[MultiplexOp]
    def __init__(self, ops: _Optional[_Iterable[_Union[MultiplexOp, _Mapping]]] = ...) -> None: ...

class MultiplexOp(_message.Message):
    __slots__ = ("slot", "reset", "step", "valid_actions", "expert_action", "close")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALID_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    EXPERT_ACTION_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    slot: int
    reset: ResetRequest
    step: StepRequest
    valid_actions: ValidActionsRequest
    expert_action: ExpertActionRequest
    close: CloseRequest
    def __init__(self, slot: _Optional[int] = ..., reset: _Optional[_Union[ResetRequest, _Mapping]] = ..., step: _Optional[_Union[StepRequest, _Mapping]] = ..., valid_actions: _Optional[_Union[ValidActionsRequest, _Mapping]] = ..., expert_action: _Optional[_Union[ExpertActionRequest, _Mapping]] = ..., close: _Optional[_Union[CloseRequest, _Mapping]] = ...) -> None: ...

class MultiplexResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[MultiplexResult]
    def __init__(self, results: _Optional[_Iterable[_Union[MultiplexResult, _Mapping]]] = ...) -> None: ...

class MultiplexResult(_message.Message):
    __slots__ = ("slot", "reset", "step", "valid_actions", "expert_action", "close", "error")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALID_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    EXPERT_ACTION_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    slot: int
    reset: ResetResponse
    step: StepResponse
    valid_actions: ValidActionsResponse
    expert_action: ExpertActionResponse
    close: CloseResponse
    error: Error
    def __init__(self, slot: _Optional[int] = ..., reset: _Optional[_Union[ResetResponse, _Mapping]] = ..., step: _Optional[_Union[StepResponse, _Mapping]] = ..., valid_actions: _Optional[_Union[ValidActionsResponse, _Mapping]] = ..., expert_action: _Optional[_Union[ExpertActionResponse, _Mapping]] = ..., close: _Optional[_Union[CloseResponse, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...
