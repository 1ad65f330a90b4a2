"""An application instrumented with the OpenTelemetry Python SDK that calls a C library
through ctypes, passing its current trace context as a traceparent string: what a service
does to let spanprobe's spans of the library join its own trace.

otel_app.py LIBRARY OTLP_HTTP_TRACES_URL
"""
import ctypes
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

library, endpoint = sys.argv[1], sys.argv[2]
handle = ctypes.CDLL(library).handle
handle.argtypes = [ctypes.c_char_p, ctypes.c_int]

provider = TracerProvider(resource=Resource.create({"service.name": "python-app"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
trace.set_tracer_provider(provider)

with trace.get_tracer("otel_app").start_as_current_span("request"):
    carrier = {}
    inject(carrier)  # W3C trace context, the SDK's default propagator
    print("traceparent", carrier["traceparent"], "handled", handle(carrier["traceparent"].encode(), 41))
provider.shutdown()
