from rest_framework.response import Response
from rest_framework.views import APIView

from bench.floor.models import Row


class ConstantView(APIView):
    """GET: a constant JSON body — the cheapest DRF request."""

    def get(self, request):
        return Response({"success": True, "value": 1})


class InsertView(APIView):
    """POST: insert one row and return it — one PostgreSQL commit per request."""

    def post(self, request):
        row = Row.objects.create(payload=request.data)
        return Response({"success": True, "id": row.pk}, status=201)
