"""Runs interop cases with grpcio against a target (normally sluice in front of an upstream).
Usage: interop_client.py HOST:PORT [CASE ...]. Prints `PASS name` / `FAIL name: why` per
case, then `N passed, N failed`; exits non-zero if any case failed."""

import sys
import threading
import queue

import grpc

from common import load_stubs

pb, pb_grpc = load_stubs()

SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\x0a\x0b\x0a\x0b\x0a\x0b")


def payload(size):
    return pb.Payload(body=b"\0" * size)


def check(condition, why):
    if not condition:
        raise AssertionError(why)


def empty_unary(stub, _):
    response = stub.EmptyCall(pb.Empty())
    check(response == pb.Empty(), "not empty: %r" % response)


def large_unary(stub, _):
    response = stub.UnaryCall(pb.SimpleRequest(response_size=314159, payload=payload(271828)))
    check(len(response.payload.body) == 314159, "got %d bytes" % len(response.payload.body))


def client_streaming(stub, _):
    sizes = [27182, 8, 1828, 45904]
    response = stub.StreamingInputCall(iter(pb.StreamingInputCallRequest(payload=payload(n)) for n in sizes))
    check(response.aggregated_payload_size == 74922, "aggregated %d" % response.aggregated_payload_size)


def server_streaming(stub, _):
    sizes = [31415, 9, 2653, 58979]
    request = pb.StreamingOutputCallRequest(response_parameters=[pb.ResponseParameters(size=n) for n in sizes])
    got = [len(r.payload.body) for r in stub.StreamingOutputCall(request)]
    check(got == sizes, "sizes %r" % got)


class Pinger:
    """Feeds a bidi call one request at a time."""

    def __init__(self):
        self.queue = queue.Queue()

    def send(self, request):
        self.queue.put(request)

    def close(self):
        self.queue.put(None)

    def __iter__(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            yield item


def ping_pong(stub, _):
    pairs = [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]
    pinger = Pinger()
    responses = stub.FullDuplexCall(iter(pinger))
    for response_size, request_size in pairs:
        pinger.send(pb.StreamingOutputCallRequest(
            response_parameters=[pb.ResponseParameters(size=response_size)], payload=payload(request_size)))
        reply = next(responses)
        check(len(reply.payload.body) == response_size, "reply of %d bytes" % len(reply.payload.body))
    pinger.close()
    check(next(responses, None) is None, "extra reply")


def empty_stream(stub, _):
    got = list(stub.FullDuplexCall(iter([])))
    check(got == [], "got %d replies" % len(got))


def custom_metadata(stub, _):
    metadata = (ECHO_INITIAL, ECHO_TRAILING)
    response, call = stub.UnaryCall.with_call(
        pb.SimpleRequest(response_size=314159, payload=payload(271828)), metadata=metadata)
    check(len(response.payload.body) == 314159, "unary payload")
    check(ECHO_INITIAL in call.initial_metadata(), "unary initial %r" % (call.initial_metadata(),))
    check(ECHO_TRAILING in call.trailing_metadata(), "unary trailing %r" % (call.trailing_metadata(),))
    responses = stub.FullDuplexCall(iter([pb.StreamingOutputCallRequest(
        response_parameters=[pb.ResponseParameters(size=314159)], payload=payload(271828))]), metadata=metadata)
    replies = list(responses)
    check(len(replies) == 1 and len(replies[0].payload.body) == 314159, "bidi reply")
    check(ECHO_INITIAL in responses.initial_metadata(), "bidi initial")
    check(ECHO_TRAILING in responses.trailing_metadata(), "bidi trailing")


def _expect_status(call, code, message):
    try:
        call()
    except grpc.RpcError as err:
        check(err.code() == code, "code %s, wanted %s" % (err.code(), code))
        if message is not None:
            check(err.details() == message, "details %r" % err.details())
        return
    raise AssertionError("call succeeded, wanted %s" % code)


def status_code_and_message(stub, _):
    status = pb.EchoStatus(code=2, message="test status message")
    _expect_status(lambda: stub.UnaryCall(pb.SimpleRequest(response_status=status)),
                   grpc.StatusCode.UNKNOWN, "test status message")
    _expect_status(lambda: list(stub.FullDuplexCall(iter([pb.StreamingOutputCallRequest(response_status=status)]))),
                   grpc.StatusCode.UNKNOWN, "test status message")


def special_status_message(stub, _):
    status = pb.EchoStatus(code=2, message=SPECIAL_MESSAGE)
    _expect_status(lambda: stub.UnaryCall(pb.SimpleRequest(response_status=status)),
                   grpc.StatusCode.UNKNOWN, SPECIAL_MESSAGE)


def unimplemented_method(_, channel):
    stub = pb_grpc.UnimplementedServiceStub(channel)
    _expect_status(lambda: stub.UnimplementedCall(pb.Empty()), grpc.StatusCode.UNIMPLEMENTED, None)


def cancel_after_begin(stub, _):
    pinger = Pinger()
    future = stub.StreamingInputCall.future(iter(pinger))
    future.cancel()
    pinger.close()
    check(future.cancelled(), "not cancelled")
    check(future.code() == grpc.StatusCode.CANCELLED, "code %s" % future.code())


def cancel_after_first_response(stub, _):
    pinger = Pinger()
    responses = stub.FullDuplexCall(iter(pinger))
    pinger.send(pb.StreamingOutputCallRequest(
        response_parameters=[pb.ResponseParameters(size=31415)], payload=payload(27182)))
    first = next(responses)
    check(len(first.payload.body) == 31415, "first reply")
    responses.cancel()
    pinger.close()
    check(responses.code() == grpc.StatusCode.CANCELLED, "code %s" % responses.code())


def timeout_on_sleeping_server(stub, _):
    pinger = Pinger()
    responses = stub.FullDuplexCall(iter(pinger), timeout=0.001)
    pinger.send(pb.StreamingOutputCallRequest(payload=payload(27182)))
    try:
        list(responses)
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, "code %s" % err.code())
        pinger.close()
        return
    finally:
        pinger.close()
    raise AssertionError("call did not time out")


CASES = [
    empty_unary, large_unary, client_streaming, server_streaming, ping_pong, empty_stream,
    custom_metadata, status_code_and_message, special_status_message, unimplemented_method,
    cancel_after_begin, cancel_after_first_response, timeout_on_sleeping_server,
]


def main(argv):
    target = argv[1]
    wanted = set(argv[2:])
    passed = failed = 0
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = pb_grpc.TestServiceStub(channel)
        for case in CASES:
            if wanted and case.__name__ not in wanted:
                continue
            result = {}

            def run():
                try:
                    case(stub, channel)
                    result["ok"] = True
                except Exception as err:  # noqa: BLE001 - report every failure kind
                    result["error"] = "%s: %s" % (type(err).__name__, err)

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            worker.join(30)
            if result.get("ok"):
                passed += 1
                print("PASS %s" % case.__name__, flush=True)
            else:
                failed += 1
                print("FAIL %s: %s" % (case.__name__, result.get("error", "timed out after 30 s")), flush=True)
    print("interop: %d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
