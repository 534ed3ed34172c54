"""The SDK's models and the API's contracts (runyard.schemas) describe the same fields.

The SDK is installed without the server, so it keeps models of its own; this test is
what keeps the two from drifting: a field added to one and not the other fails here.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any, Literal, Union

import pytest
from pydantic import BaseModel

from runyard.schemas import cleaning, llm, mcp_client, plans, run_details, tokens, triggers, users
from runyard.schemas import connections as conn
from runyard.schemas import datasets as data
from runyard.schemas import evaluation as ev
from runyard.schemas import ingest_proxy as proxy
from runyard.schemas import workflows as wf
from runyard.schemas.run_search import RunSearchPage
from runyard.schemas.runs import ArtifactView, RunDefinition, RunError, RunUsage, RunView, TraceStep
from runyard.schemas.secrets import SecretView
from runyard.schemas.tokens import TokenView
from runyard.schemas.tools import ToolVersionView, ToolView
from runyard.schemas.workspace_files import StorageUsageView, WorkspaceFileView
from runyard.sdk import models as sdk

PAIRS = [
    (sdk.Run, RunView), (sdk.RunError, RunError), (sdk.RunUsage, RunUsage), (sdk.Artifact, ArtifactView),
    (sdk.Tool, ToolView), (sdk.ToolVersion, ToolVersionView), (sdk.Token, TokenView), (sdk.Secret, SecretView),
    # The data workspace.
    (sdk.Grant, tokens.GrantView), (sdk.TokenRestrictions, tokens.RestrictionsView),
    (sdk.TokenPermissions, tokens.TokenPermissions), (sdk.NamespacePermission, tokens.NamespacePermission),
    (sdk.User, users.UserView), (sdk.Me, users.MeView), (sdk.Namespace, users.NamespaceView),
    (sdk.NamespaceMember, users.MemberView), (sdk.Column, data.ColumnView), (sdk.Dataset, data.DatasetView),
    (sdk.SchemaDataset, data.SchemaDataset), (sdk.Schema, data.SchemaView), (sdk.RowFailure, data.RowFailure),
    (sdk.RowsIngested, data.RowsIngested), (sdk.Ingestion, data.IngestionView), (sdk.Reject, data.RejectView),
    (sdk.EntityEntry, data.EntityEntry), (sdk.EntityReport, data.EntityReport),
    (sdk.UploadPart, data.UploadPartURL), (sdk.UploadedPart, data.UploadedPart), (sdk.Upload, data.UploadView),
    (sdk.Preview, data.PreviewView), (sdk.QueryResult, data.QueryResult), (sdk.UsageEvent, data.UsageEvent),
    (sdk.UsageDay, data.UsageDay),
    # Triggers (a webhook as created: with its URL, which the SDK's model leaves None afterwards).
    (sdk.Schedule, triggers.ScheduleView), (sdk.ScheduleTimes, triggers.ScheduleTimes),
    (sdk.WebhookSignature, triggers.SignatureView), (sdk.Webhook, triggers.WebhookCreated),
    (sdk.EmailTrigger, triggers.EmailTriggerView), (sdk.EmailAlias, triggers.EmailAliasView),
    (sdk.EmailRecord, triggers.EmailRecordView),
    # Workflows.
    (sdk.Workflow, wf.WorkflowView), (sdk.WorkflowVersion, wf.WorkflowVersionView), (sdk.Folder, wf.FolderView),
    (sdk.RunDefinition, RunDefinition), (sdk.TraceStep, TraceStep),
    # A run's files, execution and live connection.
    (sdk.RunFile, run_details.RunFileView), (sdk.RunExecution, run_details.RunExecution),
    (sdk.ExecutionWorker, run_details.ExecutionWorker), (sdk.ExecutionAttempt, run_details.ExecutionAttempt),
    (sdk.ExecutionTimings, run_details.ExecutionTimings), (sdk.RunDebug, run_details.RunDebug),
    (sdk.RunConnection, run_details.RunConnection),
    # Language models.
    (sdk.LLMProvider, llm.ProviderView), (sdk.InferredDescription, llm.InferredDescription),
    (sdk.CleaningTask, cleaning.CleaningTaskView),
    (sdk.IngestProxyRun, proxy.ProxyRun), (sdk.IngestProxyEvent, proxy.ProxyEvent),
    (sdk.IngestProxyModelCall, proxy.ProxyModelCall), (sdk.IngestProxyStep, proxy.ProxyStep),
    (sdk.IngestProxyTrace, proxy.ProxyTrace),
    # Connections.
    (sdk.Connection, conn.ConnectionView), (sdk.ConnectionStatus, conn.ConnectionStatus),
    (sdk.ConnectionMetadata, conn.ConnectionMetadata), (sdk.McpTool, mcp_client.McpToolView),
    # Workspace files.
    (sdk.WorkspaceFile, WorkspaceFileView), (sdk.StorageUsage, StorageUsageView),
    # Plans.
    (sdk.WorkspacePlan, plans.PlanView),
    # Evaluation.
    (sdk.ExpectedFile, ev.ExpectedFileView), (sdk.Expected, ev.ExpectedView), (sdk.FieldDifference, ev.FieldDifference),
    (sdk.FileComparison, ev.FileComparison), (sdk.Comparison, ev.ComparisonView), (sdk.Feedback, ev.FeedbackView),
    (sdk.BatchTarget, ev.BatchTarget), (sdk.Regression, ev.Regression), (sdk.EvalBatch, ev.BatchView),
    # Run search.
    (sdk.RunSearchResult, RunSearchPage),
]
# Fields every API object carries that the SDK's classes stand for themselves.
IMPLIED = {"object"}


def _kinds(annotation: Any) -> set[str]:
    """A field's type reduced to JSON kinds: what both sides must agree on."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return set().union(*(_kinds(arg) for arg in typing.get_args(annotation)))
    if origin is Literal:
        return {type(arg).__name__ for arg in typing.get_args(annotation)}
    if annotation is type(None):
        return {"null"}
    if annotation is Any:
        return {"any"}
    if annotation is datetime:
        return {"str"}  # RFC 3339 text on the wire
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"object"}
    base = origin or annotation
    names = {dict: "object", list: "array", str: "str", int: "int", float: "float", bool: "bool"}
    return {names.get(base, getattr(base, "__name__", str(base)))}


@pytest.mark.parametrize(("client", "contract"), PAIRS, ids=lambda m: m.__name__)
def test_the_sdk_models_and_the_contracts_name_the_same_fields(client: type[BaseModel],
                                                                contract: type[BaseModel]) -> None:
    ours, theirs = set(client.model_fields), set(contract.model_fields) - IMPLIED
    assert ours == theirs, f"only in the SDK: {sorted(ours - theirs)}; only in the API: {sorted(theirs - ours)}"


@pytest.mark.parametrize(("client", "contract"), PAIRS, ids=lambda m: m.__name__)
def test_the_sdk_reads_every_value_the_api_may_send(client: type[BaseModel], contract: type[BaseModel]) -> None:
    """Each field's kinds in the contract are ones the SDK's field accepts (it may accept more:
    it is lenient on purpose, e.g. null for fields an older server leaves out)."""
    for name, field in contract.model_fields.items():
        if name in IMPLIED:
            continue
        sent = _kinds(field.annotation) - {"null"}
        read = _kinds(client.model_fields[name].annotation)
        if "any" in read:
            continue
        read |= {"float"} if "int" in read else set()
        assert sent <= read | ({"int"} if "float" in read else set()), (name, sent, read)


def test_the_check_sees_a_difference() -> None:
    class Narrow(BaseModel):
        id: str

    class Wide(BaseModel):
        id: str
        extra: int

    with pytest.raises(AssertionError):
        test_the_sdk_models_and_the_contracts_name_the_same_fields(Narrow, Wide)
