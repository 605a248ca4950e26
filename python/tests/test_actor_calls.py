"""Actor creation, calls, ordering, argument resolution, options."""
import pytest

from conftest import GET_TIMEOUT

pytestmark = pytest.mark.usefixtures("ferry_module_session")


def test_create_with_args_and_kwargs(actors):
    import ferry
    c = actors.Counter.remote(10, step=5)
    assert ferry.get(c.get.remote(), timeout=GET_TIMEOUT) == 10
    assert ferry.get(c.incr.remote(), timeout=GET_TIMEOUT) == 15
    assert ferry.get(c.incr.remote(), timeout=GET_TIMEOUT) == 20

    d = actors.Counter.remote(start=-3)  # keyword only, default step
    assert ferry.get(d.incr.remote(), timeout=GET_TIMEOUT) == -2
    # Two actors are two processes with their own state.
    assert ferry.get(c.get.remote(), timeout=GET_TIMEOUT) == 20
    assert ferry.get(c.pid.remote(), timeout=GET_TIMEOUT) != ferry.get(d.pid.remote(), timeout=GET_TIMEOUT)


def test_method_remote_returns_object_ref(actors):
    import ferry
    e = actors.Echo.remote()
    ref = e.ping.remote()
    assert isinstance(ref, ferry.ObjectRef)
    assert ferry.get(ref, timeout=GET_TIMEOUT) == "pong"
    # get of a list keeps the list's order
    refs = [e.inc.remote(i) for i in range(5)]
    assert ferry.get(refs, timeout=GET_TIMEOUT) == [1, 2, 3, 4, 5]


def test_200_calls_run_in_submission_order(actors):
    import ferry
    c = actors.Counter.remote(0)
    refs = [c.append.remote(i) for i in range(200)]  # submitted without waiting
    assert ferry.get(refs, timeout=GET_TIMEOUT) == list(range(1, 201))
    assert ferry.get(c.get_log.remote(), timeout=GET_TIMEOUT) == list(range(200))


def test_object_refs_as_positional_and_keyword_args(actors):
    import ferry
    producer = actors.Echo.remote()
    consumer = actors.Echo.remote()
    # The producer's results are not ready when the consumer's call is submitted.
    r5 = producer.slow_value.remote(5, 0.2)
    r6 = producer.slow_value.remote(6, 0.0)
    p7 = ferry.put(7)
    ref = consumer.echo.remote(r5, p7, k=r6)
    assert ferry.get(ref, timeout=GET_TIMEOUT) == ((5, 7), {"k": 6})
    assert ferry.get(consumer.add.remote(r5, y=r6), timeout=GET_TIMEOUT) == 11


def test_top_level_refs_are_resolved_and_nested_refs_arrive_as_refs(actors):
    """Ray's argument semantics: a ref passed as an argument itself
    (positional or keyword) is resolved to its value before the call; a ref
    inside a container arrives as an ObjectRef that the task may get, wait
    on or pass on."""
    import ferry
    producer = actors.Echo.remote()
    consumer = actors.Echo.remote()
    r1 = producer.slow_value.remote(1, 0.2)
    r2 = producer.slow_value.remote("two", 0.0)
    r3 = ferry.put([3.0])
    kinds = ferry.get(consumer.kinds.remote(r1, [r2, (r3, 9)], k=r3, nested={"d": r1}),
                      timeout=GET_TIMEOUT)
    assert kinds == (["int", ["ObjectRef", ("ObjectRef", "int")]],
                     {"k": ["float"], "nested": {"d": "ObjectRef"}})

    # The nested refs come back to the driver as refs to the same objects.
    (_, [back2, (back3, _)]), _ = ferry.get(consumer.echo.remote(r1, [r2, (r3, 9)]),
                                            timeout=GET_TIMEOUT)
    assert back2 == r2 and back3 == r3
    assert ferry.get([back2, back3], timeout=GET_TIMEOUT) == ["two", [3.0]]


def test_creation_args_may_be_object_refs(actors):
    import ferry
    c = actors.Counter.remote(ferry.put(7), step=ferry.put(2))
    assert ferry.get(c.incr.remote(), timeout=GET_TIMEOUT) == 9


def test_ref_chain_across_three_actors(actors):
    import ferry
    a, b, c = (actors.Echo.remote() for _ in range(3))
    r = c.inc.remote(b.inc.remote(a.inc.remote(1)))
    assert ferry.get(r, timeout=GET_TIMEOUT) == 4

    # A longer chain that hops around all three, never fetched in between.
    ref = ferry.put(0)
    hops = [a, b, c] * 10
    for h in hops:
        ref = h.inc.remote(ref)
    assert ferry.get(ref, timeout=GET_TIMEOUT) == len(hops)

    # A large (shared-memory sized) value passed producer -> consumer by ref.
    n = 2_000_000
    arr_ref = a.make_array.remote(n, 3)
    total = ferry.get(c.sum.remote(b.echo_array.remote(arr_ref)), timeout=GET_TIMEOUT)
    assert total == 3 * n * (n - 1) // 2


def test_wrong_method_name_is_attribute_error_at_remote(actors):
    e = actors.Echo.remote()
    with pytest.raises(AttributeError) as ei:
        e.no_such_method.remote(1)
    assert "no_such_method" in str(ei.value)


def _expect_type_error(call):
    """Wrong arguments: TypeError at .remote, or a TaskError that is a TypeError at get."""
    import ferry
    try:
        ref = call()
    except TypeError:
        return "at-remote"
    with pytest.raises(TypeError):
        ferry.get(ref, timeout=GET_TIMEOUT)
    return "at-get"


def test_wrong_arguments_are_type_error(actors):
    import ferry
    e = actors.Echo.remote()
    _expect_type_error(lambda: e.add.remote(1, 2, 3))      # too many
    _expect_type_error(lambda: e.add.remote(1))            # too few
    _expect_type_error(lambda: e.add.remote(1, z=2))       # unknown keyword
    # The actor is fine afterwards.
    assert ferry.get(e.add.remote(1, 2), timeout=GET_TIMEOUT) == 3


def test_class_options_name(actors):
    import ferry
    named = actors.Counter.options(name="ferry-test-counter").remote(100, step=1)
    assert ferry.get(named.incr.remote(), timeout=GET_TIMEOUT) == 101
    # options() does not change the class itself
    plain = actors.Counter.options(num_cpus=1).remote(1)
    assert ferry.get(plain.incr.remote(), timeout=GET_TIMEOUT) == 2
    again = actors.Counter.remote(5)
    assert ferry.get(again.get.remote(), timeout=GET_TIMEOUT) == 5


def test_num_returns_two_via_method_options(actors):
    import ferry
    e = actors.Echo.remote()
    refs = e.pair.options(num_returns=2).remote(3)
    refs = list(refs)
    assert len(refs) == 2
    assert all(isinstance(r, ferry.ObjectRef) for r in refs)
    assert ferry.get(refs, timeout=GET_TIMEOUT) == [3, 4]
    # The handle's default is unchanged: one ref holding the tuple.
    single = e.pair.remote(3)
    assert isinstance(single, ferry.ObjectRef)
    assert tuple(ferry.get(single, timeout=GET_TIMEOUT)) == (3, 4)


def test_num_returns_two_via_method_decorator(actors):
    import ferry
    e = actors.Echo.remote()
    refs = list(e.split.remote(2))
    assert len(refs) == 2
    assert ferry.get(refs[0], timeout=GET_TIMEOUT) == 20
    assert ferry.get(refs[1], timeout=GET_TIMEOUT) == 200
    # each of the refs is usable as an argument on its own
    assert ferry.get(e.add.remote(refs[0], refs[1]), timeout=GET_TIMEOUT) == 220


def test_default_max_concurrency_runs_one_call_at_a_time(actors):
    import ferry
    p = actors.Probe.remote()
    refs = [p.enter.remote(0.05) for _ in range(4)]
    assert ferry.get(refs, timeout=GET_TIMEOUT) == [True] * 4
    assert ferry.get(p.max_seen.remote(), timeout=GET_TIMEOUT) == 1


def test_max_concurrency_two_runs_calls_at_once(actors):
    import ferry
    g = actors.Gate.remote()
    # Each call waits on a 2-party barrier: only concurrent execution lets both return.
    refs = [g.rendezvous.remote(10.0), g.rendezvous.remote(10.0)]
    assert ferry.get(refs, timeout=GET_TIMEOUT) == [True, True]
