"""A grpcio implementation of sluice.testing.TestService, used as an independent upstream in
the interop tests. Prints `PORT <n>` once it listens, then serves until killed."""

import sys
import time
from concurrent import futures

import grpc

from common import load_stubs

pb, pb_grpc = load_stubs()

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"


def echo_metadata(context):
    metadata = dict(context.invocation_metadata())
    if ECHO_INITIAL in metadata:
        context.send_initial_metadata(((ECHO_INITIAL, metadata[ECHO_INITIAL]),))
    if ECHO_TRAILING in metadata:
        context.set_trailing_metadata(((ECHO_TRAILING, metadata[ECHO_TRAILING]),))


def apply_status(status, context):
    """Sets the requested status; True if the call should end now."""
    if status is not None and status.code != 0:
        context.set_code(grpc.StatusCode(_code(status.code)))
        context.set_details(status.message)
        return True
    return False


def _code(number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code.value
    return grpc.StatusCode.UNKNOWN.value


def payload(size):
    return pb.Payload(body=b"\0" * size)


class TestService(pb_grpc.TestServiceServicer):
    def EmptyCall(self, request, context):
        echo_metadata(context)
        return pb.Empty()

    def UnaryCall(self, request, context):
        echo_metadata(context)
        if apply_status(request.response_status if request.HasField("response_status") else None, context):
            return pb.SimpleResponse()
        return pb.SimpleResponse(payload=payload(request.response_size))

    def StreamingOutputCall(self, request, context):
        echo_metadata(context)
        for params in request.response_parameters:
            if params.interval_us:
                time.sleep(params.interval_us / 1e6)
            yield pb.StreamingOutputCallResponse(payload=payload(params.size))
        apply_status(request.response_status if request.HasField("response_status") else None, context)

    def StreamingInputCall(self, request_iterator, context):
        echo_metadata(context)
        total = sum(len(r.payload.body) for r in request_iterator)
        return pb.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        for request in request_iterator:
            if apply_status(request.response_status if request.HasField("response_status") else None, context):
                return
            for params in request.response_parameters:
                if params.interval_us:
                    time.sleep(params.interval_us / 1e6)
                yield pb.StreamingOutputCallResponse(payload=payload(params.size))


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    pb_grpc.add_TestServiceServicer_to_server(TestService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("PORT %d" % port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    sys.exit(main())
