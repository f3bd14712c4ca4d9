"""`onecart status`'s Dagster sections read through the Dagster webserver's GraphQL API.

Opening the Dagster instance in the status process costs ~2.4 s of CPU (importing Dagster,
~1.3 s, then each storage's schema check), paid by every `status` while the stack runs. The
webserver `onecart up` started has both loaded already: one POST of the public GraphQL API
(docs.dagster.io/api/graphql: runs, asset materializations, asset check executions) answers
what status shows, and status imports no Dagster. The questions are those
onecart/catalog_status.py and onecart/check_status.py ask the instance, and the answers are
turned into the same values, so both paths print the same lines. Whatever this module cannot
read exactly (no answer, a GraphQL error, a metadata type it does not know, a check whose last
completed result lies past the page read) raises :class:`GraphQLUnavailable`, and status opens
the instance instead.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from onecart.catalog_status import PARTITION_TAG, RAW_CATALOG, PartitionRun
from onecart.check_status import CheckResult
from onecart.dagster_runs import stopped_by_down

# Seconds status waits for the webserver before it opens the instance itself.
TIMEOUT_S = 10
# Executions read per check: the newest completed one is shown, and executions that did not
# complete (in progress, skipped because their step failed) come before it. A page of only
# those makes status read the instance, which filters them in its query.
CHECK_EXECUTIONS_PER_READ = 20
# Dagster's AssetCheckExecutionRecordStatus values that carry an evaluation (its
# COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES, which the instance path filters on).
COMPLETED_CHECK_STATUSES = frozenset({"SUCCEEDED", "FAILED"})

# A function that POSTs a GraphQL document with its variables and returns the decoded answer.
Post = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]

_METADATA = """
metadataEntries {
  __typename label
  ... on IntMetadataEntry { intRepr }
  ... on FloatMetadataEntry { floatValue floatRepr }
  ... on TextMetadataEntry { text }
  ... on JsonMetadataEntry { jsonString }
  ... on BoolMetadataEntry { boolValue }
  ... on MarkdownMetadataEntry { mdStr }
  ... on UrlMetadataEntry { url }
  ... on PathMetadataEntry { path }
}
"""


class GraphQLUnavailable(Exception):
    """The webserver's answer cannot stand in for the instance's: read the instance."""


def post_to(url: str, *, timeout: float = TIMEOUT_S) -> Post:
    """A Post to the GraphQL endpoint at `url` (the webserver's `/graphql`)."""

    def post(query: str, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        body = json.dumps({"query": query, "variables": dict(variables)}).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)
        except (OSError, ValueError) as exc:  # refused, timed out, HTTP error, not JSON
            raise GraphQLUnavailable(f"{url}: {exc}") from exc

    return post


def _ask(post: Post, query: str, variables: Mapping[str, Any]) -> Mapping[str, Any]:
    answer = post(query, variables)
    if answer.get("errors") or not isinstance(answer.get("data"), dict):
        raise GraphQLUnavailable(f"GraphQL errors: {answer.get('errors')}")
    return answer["data"]


def partition_runs(
    post: Post, slugs: Sequence[str]
) -> tuple[dict[str, PartitionRun], dict[str, datetime]]:
    """As catalog_status.last_partition_runs: each slug's newest partition run, and when its
    raw_catalog was last materialized."""
    if not slugs:
        return {}, {}
    parts = []
    variables: dict[str, Any] = {}
    for index, slug in enumerate(slugs):
        variables[f"s{index}"] = slug
        variables[f"p{index}"] = [slug]
        parts.append(
            f"r{index}: runsOrError(filter: {{tags: [{{key: $tag, value: $s{index}}}]}}, limit: 1)"
            " { __typename ... on Runs { results { runId status creationTime endTime"
            " tags { key value } } } }"
            f" m{index}: assetOrError(assetKey: {{path: [$raw]}}) {{ __typename ... on Asset"
            f" {{ assetMaterializations(partitions: $p{index}, limit: 1) {{ timestamp }} }} }}"
        )
    declared = "".join(f", $s{i}: String!, $p{i}: [String!]" for i in range(len(slugs)))
    query = f"query PartitionRuns($tag: String!, $raw: String!{declared}) {{ {' '.join(parts)} }}"
    data = _ask(post, query, {"tag": PARTITION_TAG, "raw": RAW_CATALOG, **variables})
    runs: dict[str, PartitionRun] = {}
    fetched: dict[str, datetime] = {}
    for index, slug in enumerate(slugs):
        found = data[f"r{index}"]
        if found.get("__typename") != "Runs":
            raise GraphQLUnavailable(f"runs of {slug}: {found}")
        if found["results"]:
            run = found["results"][0]
            tags = {tag["key"]: tag["value"] for tag in run["tags"]}
            ended = run["endTime"] or run["creationTime"]
            runs[slug] = PartitionRun(
                run_id=run["runId"],
                status=run["status"],
                at=datetime.fromtimestamp(ended, UTC) if ended else None,
                stopped_by_down=stopped_by_down(run["status"], tags),
            )
        asset = data[f"m{index}"]
        if asset.get("__typename") == "AssetNotFoundError":
            continue  # nothing ever materialized it
        if asset.get("__typename") != "Asset":
            raise GraphQLUnavailable(f"raw_catalog of {slug}: {asset}")
        if asset["assetMaterializations"]:
            # Milliseconds since the epoch, as a string.
            moment = int(asset["assetMaterializations"][0]["timestamp"]) / 1000
            fetched[slug] = datetime.fromtimestamp(moment, UTC)
    return runs, fetched


def _metadata_value(entry: Mapping[str, Any]) -> Any:
    """An entry's plain value, as the instance's MetadataValue.value gives it."""
    kind = entry["__typename"]
    if kind == "IntMetadataEntry":
        return int(entry["intRepr"])
    if kind == "FloatMetadataEntry":
        value = entry["floatValue"]
        return float(entry["floatRepr"]) if value is None else float(value)
    if kind == "JsonMetadataEntry":
        return json.loads(entry["jsonString"])
    if kind == "NullMetadataEntry":
        return None
    fields = {
        "TextMetadataEntry": "text",
        "BoolMetadataEntry": "boolValue",
        "MarkdownMetadataEntry": "mdStr",
        "UrlMetadataEntry": "url",
        "PathMetadataEntry": "path",
    }
    if kind not in fields:
        raise GraphQLUnavailable(f"metadata {entry.get('label')!r} of type {kind}")
    return entry[fields[kind]]


def check_results(
    post: Post,
    partitioned: Sequence[tuple[str, str]],
    unpartitioned: Sequence[tuple[str, str]],
    slugs: Sequence[str],
) -> list[CheckResult]:
    """As check_status.latest_check_results: the latest completed evaluation of each check
    ((asset, check) pairs), per slug for the partitioned ones, in the same order."""
    wanted = [(asset, check, slug) for asset, check in partitioned for slug in slugs]
    wanted += [(asset, check, None) for asset, check in unpartitioned]
    if not wanted:
        return []
    parts = []
    variables: dict[str, Any] = {"limit": CHECK_EXECUTIONS_PER_READ}
    declared = ["$limit: Int!"]
    for index, (asset, check, slug) in enumerate(wanted):
        variables[f"a{index}"] = [asset]
        variables[f"c{index}"] = check
        declared += [f"$a{index}: [String!]!", f"$c{index}: String!"]
        partition = ""
        if slug is not None:
            variables[f"s{index}"] = slug
            declared.append(f"$s{index}: String")
            partition = f", partition: $s{index}"
        parts.append(
            f"x{index}: assetCheckExecutions(assetKey: {{path: $a{index}}}, "
            f"checkName: $c{index}{partition}, limit: $limit) {{ status partition"
            f" evaluation {{ success severity timestamp {_METADATA} }} }}"
        )
    query = f"query CheckResults({', '.join(declared)}) {{ {' '.join(parts)} }}"
    data = _ask(post, query, variables)
    results = []
    for index, (asset, check, _) in enumerate(wanted):
        executions = data[f"x{index}"]
        completed = [
            e
            for e in executions
            if e["status"] in COMPLETED_CHECK_STATUSES and e["evaluation"] is not None
        ]
        if not completed:
            if len(executions) >= CHECK_EXECUTIONS_PER_READ:
                raise GraphQLUnavailable(f"{asset} {check}: no completed result in one page")
            continue
        execution = completed[0]
        evaluation = execution["evaluation"]
        results.append(
            CheckResult(
                asset=asset,
                check=check,
                partition=execution["partition"],
                passed=bool(evaluation["success"]),
                severity=evaluation["severity"],
                at=datetime.fromtimestamp(evaluation["timestamp"], UTC),
                metadata={
                    entry["label"]: _metadata_value(entry)
                    for entry in evaluation["metadataEntries"]
                },
            )
        )
    return results
