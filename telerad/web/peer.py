"""The reviewer's peer review pages: the queue and one review with its score form (blinded)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.choices import Role
from core.exceptions import DomainError, NotFound
from core.workspaces import workspace_required
from telerad.api.peer import review_payload, review_summary
from telerad.models import PeerReviewStatus, RadpeerScore, Significance
from telerad.selectors_peer import peer_review_get_for_reviewer, peer_reviews_for_reviewer
from telerad.services.peer_review import peer_review_submit


@workspace_required(Role.RADIOLOGIST)
@require_http_methods(["GET"])
def peer_review_list(request: HttpRequest) -> HttpResponse:
    reviews = peer_reviews_for_reviewer(request.user, status=None)
    rows = [review_summary(r) for r in reviews[:200]]
    context = {
        "open_rows": [r for r in rows if r["status"] == PeerReviewStatus.ASSIGNED],
        "done_rows": [r for r in rows if r["status"] != PeerReviewStatus.ASSIGNED],
    }
    return render(request, "telerad/peer_list.html", context)


@workspace_required(Role.RADIOLOGIST)
@require_http_methods(["GET", "POST"])
def peer_review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    error = ""
    form = {"score": "", "significance": "", "comment": ""}
    try:
        review = peer_review_get_for_reviewer(request.user, pk, request=request)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if request.method == "POST":
        form = {key: request.POST.get(key, "") for key in form}
        try:
            peer_review_submit(
                actor=request.user,
                review=review,
                score=form["score"],  # type: ignore[arg-type]  # the service validates
                significance=form["significance"],
                comment=form["comment"],
                request=request,
            )
            return redirect("reading-peer-review-page", pk=review.pk)
        except DomainError as exc:
            error = exc.message
    payload = review_payload(review, user=request.user)
    fields = payload["report"]["fields"]
    rows = [
        (field["label"], fields.get(field["name"]))
        for field in payload["report"]["template"]["fields"]
        if fields.get(field["name"]) not in (None, "")
    ]
    context = {
        "review": payload,
        "rows": rows,
        "scores": RadpeerScore.choices,
        "significances": [c for c in Significance.choices if c[0]],
        "form": form,
        "error": error,
    }
    return render(request, "telerad/peer_detail.html", context, status=400 if error else 200)
