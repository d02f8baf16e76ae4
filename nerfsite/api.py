"""The REST API root. Each app adds its own router; docs at /api/docs."""

from ninja import NinjaAPI

api = NinjaAPI(
    title="360° spins API",
    version="1.0.0",
    description="Create products, upload photos, run jobs and fetch transparent 360° frames.",
    urls_namespace="api",
)


@api.get("/health", tags=["meta"], summary="The API answers")
def health(request) -> dict[str, str]:
    return {"status": "ok"}
