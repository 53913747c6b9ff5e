from service.core.arrivals import Arrivals, GrpcArrivals, HttpArrivals


def test_http_arrivals_are_possible_while_an_open_connection_has_no_request_in_the_app():
    http = HttpArrivals()
    assert not http.possible()  # no connection at all
    http.connections = 2
    http.in_app = 1
    assert http.possible()
    http.in_app = 2  # one request per HTTP/1.1 connection: both are in
    assert not http.possible()


def test_grpc_arrivals_are_possible_while_any_call_is_in_progress():
    grpc = GrpcArrivals()
    assert not grpc.possible()
    grpc.started()
    assert grpc.possible()  # calls on their way are invisible: this one's client may have sent more
    grpc.finished()
    assert not grpc.possible()


def test_arrivals_ask_every_front_door_and_are_assumed_without_any():
    assert Arrivals(()).possible()
    http, grpc = HttpArrivals(), GrpcArrivals()
    arrivals = Arrivals((http, grpc))
    assert not arrivals.possible()
    http.connections = 1
    assert arrivals.possible()
    http.connections = 0
    grpc.started()
    assert arrivals.possible()
