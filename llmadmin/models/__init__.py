"""ORM models, one module per domain."""

from llmadmin.models.audit import AuditEntry
from llmadmin.models.bulk_operation import BulkOperation
from llmadmin.models.download import Download
from llmadmin.models.llm_model import LLMModel
from llmadmin.models.person import Person
from llmadmin.models.task import Task

__all__ = ["AuditEntry", "BulkOperation", "Download", "LLMModel", "Person", "Task"]
