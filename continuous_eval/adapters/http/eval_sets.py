"""Eval sets over HTTP: create and list sets, add cases and labels, read cases and histories.

Writes are all or nothing: every item of a batch is checked against the
set's scale and cases before anything is stored, and a bad item answers 422
with a stable code (``label_off_scale``, ``unknown_case``) and its index in
``details``. Labels are only ever added: a person who changes their mind
posts a new label, and the cases read back carry each author's latest.
The store blocks, so the routes are plain functions FastAPI runs in its
thread pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Query, Security
from pydantic import AwareDatetime

from continuous_eval.adapters.http.auth import bearer_scheme
from continuous_eval.adapters.http.errors import ApiError, error_responses
from continuous_eval.adapters.http.eval_set_schemas import (
    CasePage,
    CasesIn,
    CasesOut,
    EvalSetDetail,
    EvalSetIn,
    EvalSetList,
    EvalSetOut,
    LabelList,
    LabelsIn,
    case_out,
    eval_set_out,
    label_out,
)
from continuous_eval.adapters.http.pagination import decode_case_cursor, encode_case_cursor
from continuous_eval.adapters.http.schemas import NO_NUL
from continuous_eval.core.label_summary import summary
from continuous_eval.core.labels import EvalSet, NewLabel, valid_label_value
from continuous_eval.errors import EvalSetExists
from continuous_eval.ports.labels import EvalSetStore

EvalSetId = Annotated[int, Path(ge=1, le=2**62)]
CaseId = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]


def eval_sets_router(store: EvalSetStore) -> APIRouter:
    """The eval-set routes over ``store``."""
    router = APIRouter(dependencies=[Security(bearer_scheme)], tags=["eval-sets"])
    _set_routes(router, store)
    _case_routes(router, store)
    return router


def _set_routes(router: APIRouter, store: EvalSetStore) -> None:
    @router.post(
        "/api/eval-sets",
        status_code=201,
        response_model=EvalSetOut,
        responses=error_responses(401, 409, 413, 422),
    )
    def create_eval_set(body: EvalSetIn) -> EvalSetOut:
        """Create an eval set; with ``feature``, feedback on that feature's traces fills it."""
        try:
            made = store.create_eval_set(body.name, body.scale, body.description, body.feature)
        except EvalSetExists:
            raise ApiError(
                409, "eval_set_exists", f"an eval set named {body.name!r} exists already"
            ) from None
        return eval_set_out(made)

    @router.get("/api/eval-sets", response_model=EvalSetList, responses=error_responses(401))
    def list_eval_sets() -> EvalSetList:
        """Every eval set, by name."""
        return EvalSetList(items=[eval_set_out(s) for s in store.list_eval_sets()])

    @router.get(
        "/api/eval-sets/{eval_set_id}",
        response_model=EvalSetDetail,
        responses=error_responses(401, 404, 422),
    )
    def get_eval_set(eval_set_id: EvalSetId) -> EvalSetDetail:
        """A set with the counts of its labels in force: cases, labels, authors, consensus."""
        found = _known(store, eval_set_id)
        shown = summary(found, store.labelled_cases(found.id))
        return EvalSetDetail(
            **eval_set_out(found).model_dump(),
            labelled_cases=len(shown.cases),
            labels=sum(c.labels for c in shown.cases),
            authors=shown.authors,
            consensus=shown.distribution,
        )


def _case_routes(router: APIRouter, store: EvalSetStore) -> None:
    @router.post(
        "/api/eval-sets/{eval_set_id}/cases",
        response_model=CasesOut,
        responses=error_responses(401, 404, 413, 422),
    )
    def put_cases(eval_set_id: EvalSetId, body: CasesIn) -> CasesOut:
        """Add cases or replace them by ``case_id``, with their labels; all or none."""
        found = _known(store, eval_set_id)
        labels = [label for item in body.cases for label in item.to_labels()]
        _check_scale(found, [(i, x) for i, c in enumerate(body.cases) for x in c.to_labels()])
        cases = {item.case_id: item.to_case() for item in body.cases}
        new = store.put_cases(found.id, list(cases.values()))
        store.add_labels(found.id, labels)
        return CasesOut(cases_new=new, cases_updated=len(cases) - new, labels=len(labels))

    @router.post(
        "/api/eval-sets/{eval_set_id}/labels",
        status_code=201,
        response_model=LabelList,
        responses=error_responses(401, 404, 413, 422),
    )
    def add_labels(eval_set_id: EvalSetId, body: LabelsIn) -> LabelList:
        """Label cases already in the set; all or none. A label never replaces one: the
        author's latest is the one in force."""
        found = _known(store, eval_set_id)
        labels = [item.to_label() for item in body.labels]
        _check_scale(found, list(enumerate(labels)))
        try:
            made = store.add_labels(found.id, labels)
        except LookupError as exc:
            raise ApiError(422, "unknown_case", str(exc)) from None
        return LabelList(items=[label_out(x) for x in made])

    @router.get(
        "/api/eval-sets/{eval_set_id}/cases",
        response_model=CasePage,
        responses=error_responses(401, 404, 422),
    )
    def list_cases(
        eval_set_id: EvalSetId,
        as_of: AwareDatetime | None = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> CasePage:
        """Labelled cases by case id, each with the labels in force at ``as_of`` (now when
        absent) and their consensus, a page at a time."""
        found = _known(store, eval_set_id)
        after = decode_case_cursor(cursor) if cursor is not None else None
        labelled = store.labelled_cases(found.id, as_of)
        rest = [c for c in labelled if after is None or c.case.case_id > after]
        page = rest[:limit]
        next_cursor = encode_case_cursor(page[-1].case.case_id) if len(rest) > limit else None
        return CasePage(items=[case_out(c, found.scale) for c in page], next_cursor=next_cursor)

    @router.get(
        "/api/eval-sets/{eval_set_id}/cases/{case_id}/labels",
        response_model=LabelList,
        responses=error_responses(401, 404, 422),
    )
    def label_history(eval_set_id: EvalSetId, case_id: CaseId) -> LabelList:
        """Every label of one case, oldest first, superseded ones too."""
        found = _known(store, eval_set_id)
        history = store.label_history(found.id, case_id)
        if not history:
            raise ApiError(
                404, "case_not_found", f"eval set {found.name!r} has no label of case {case_id!r}"
            )
        return LabelList(items=[label_out(x) for x in history])


def _known(store: EvalSetStore, eval_set_id: int) -> EvalSet:
    found = store.eval_set_by_id(eval_set_id)
    if found is None:
        raise ApiError(404, "eval_set_not_found", f"no eval set with id {eval_set_id}")
    return found


def _check_scale(eval_set: EvalSet, labels: Sequence[tuple[int, NewLabel]]) -> None:
    """Refuse the batch at its first label off the set's scale, naming the body item
    (``index``) it is in."""
    for index, item in labels:
        if not valid_label_value(eval_set.scale, item.value):
            raise ApiError(
                422,
                "label_off_scale",
                f"item {index}: the label {item.value:g} of case {item.case_id!r} is not on "
                f"the {eval_set.scale} scale",
                {"index": index, "case_id": item.case_id, "scale": eval_set.scale},
            )
