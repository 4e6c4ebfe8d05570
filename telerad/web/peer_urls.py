from django.urls import path

from telerad.web import peer

urlpatterns = [
    path("workspace/reading/peer-reviews/", peer.peer_review_list, name="reading-peer-reviews-page"),
    path(
        "workspace/reading/peer-reviews/<int:pk>/", peer.peer_review_detail, name="reading-peer-review-page"
    ),
]
