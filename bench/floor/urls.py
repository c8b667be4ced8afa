from django.urls import path

from bench.floor.views import ConstantView, InsertView

urlpatterns = [path("constant", ConstantView.as_view()), path("insert", InsertView.as_view())]
