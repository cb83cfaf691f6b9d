"""ORM models, one module per domain."""

from llmadmin.models.api_token import ApiToken
from llmadmin.models.audit import AuditEntry
from llmadmin.models.batch import Batch
from llmadmin.models.bulk_operation import BulkOperation
from llmadmin.models.code_outbox import CodeOutboxEntry
from llmadmin.models.download import Download
from llmadmin.models.llm_model import LLMModel
from llmadmin.models.login_session import LoginSession
from llmadmin.models.person import Person
from llmadmin.models.task import Task
from llmadmin.models.task_run import TaskRun

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Batch",
    "BulkOperation",
    "CodeOutboxEntry",
    "Download",
    "LLMModel",
    "LoginSession",
    "Person",
    "Task",
    "TaskRun",
]
