"""What is checked when (RFC 7950 §8.3): syntax at every edit, the rest when
a datastore is validated; and one error for one root cause."""

from __future__ import annotations

import pytest
from conftest import Running
from ncclient.operations import RPCError
from test_netconf_rpcs import channel_path, channels, config, errors_of, port, rpc_error

from nf.config.codec import load_document
from nf.config.validate import check_syntax, validate
from nf.schema import default_schema

SCHEMA = default_schema()
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"


def _tree(body: str):  # type: ignore[no-untyped-def]
    tree, errors = load_document(f'<serial-over-ip xmlns="{SOIP}">{body}</serial-over-ip>', SCHEMA)
    assert errors == []
    return tree


DANGLING = "<channel><name>c1</name><serial-port>later</serial-port><mode>server</mode></channel>"


def test_syntax_check_leaves_semantic_constraints_for_validation() -> None:
    tree = _tree(DANGLING)
    # no leafref existence, no listen/port must, no mandatory checks yet
    assert check_syntax(tree, SCHEMA) == []
    tags = sorted(e.app_tag or e.tag for e in validate(tree, SCHEMA))
    assert tags == ["instance-required", "must-violation"]


def test_syntax_check_refuses_bad_values_and_two_cases() -> None:
    tree = _tree(
        "<serial-port><name>p</name><device>loop://</device><baud-rate>-5</baud-rate>"
        "</serial-port>" + DANGLING.replace("server", "sideways")
    )
    found = check_syntax(tree, SCHEMA)
    assert sorted(e.path or "" for e in found) == [
        f"{channel_path('c1')}/soip:mode",
        "/soip:serial-over-ip/soip:serial-port[soip:name='p']/soip:baud-rate",
    ]
    assert {e.tag for e in found} == {"invalid-value"}


def test_missing_mode_is_one_error_not_its_knock_ons() -> None:
    """Issue 9 point 3: a channel without mode used to get five errors,
    "client mode needs exactly one destination" among them."""
    tree = _tree(
        "<serial-port><name>p1</name><device>loop://</device></serial-port>"
        "<channel><name>c1</name><serial-port>p1</serial-port>"
        "<listen><port>4001</port></listen></channel>"
    )
    found = validate(tree, SCHEMA)
    assert [(e.tag, e.path) for e in found] == [
        ("missing-element", f"{channel_path('c1')}/soip:mode")
    ]


def test_knock_on_suppression_keeps_unrelated_errors() -> None:
    """Only constraints that name the missing leaf are held back."""
    tree = _tree(
        "<serial-port><name>p1</name><device>loop://</device></serial-port>"
        "<channel><name>c1</name><serial-port>nowhere</serial-port>"
        "<listen><port>4001</port></listen></channel>"
    )
    found = {(e.tag, e.app_tag) for e in validate(tree, SCHEMA)}
    assert found == {("missing-element", None), ("data-missing", "instance-required")}


def test_candidate_is_built_step_by_step_and_validated_at_commit(daemon: Running) -> None:
    """RFC 7950 §8.3.3: a channel may name a serial port created later;
    validate and commit check the whole candidate."""
    with daemon.connect() as m:
        m.edit_config(target="candidate", config=config(DANGLING))
        assert sorted(channels(m, "candidate")) == ["c1", "demo"]
        for operation in (lambda: m.validate(source="candidate"), m.commit):
            found = errors_of(rpc_error(operation))
            assert {(e.tag, e.app_tag) for e in found} == {
                ("data-missing", "instance-required"),
                ("operation-failed", "must-violation"),
            }
        m.edit_config(target="candidate", config=config(port("later")))
        m.edit_config(
            target="candidate",
            config=config(
                "<channel><name>c1</name><listen><address>127.0.0.1</address>"
                "<port>4001</port></listen></channel>"  # NullRuntime: nothing binds
            ),
        )
        m.validate(source="candidate")
        m.commit()
        assert sorted(channels(m, "running")) == ["c1", "demo"]


def test_candidate_edit_still_refuses_syntax_errors(daemon: Running) -> None:
    with daemon.connect() as m:
        error = rpc_error(
            m.edit_config,
            target="candidate",
            config=config(DANGLING.replace("<mode>server</mode>", "<mode>sideways</mode>")),
        )
        assert (error.tag, error.path) == ("invalid-value", f"{channel_path('c1')}/soip:mode")
        assert channels(m, "candidate") == ["demo"]


def test_test_only_on_candidate_validates_everything(daemon: Running) -> None:
    """test-option test-only asks whether the result would be valid: the
    whole of it, and the candidate stays as it was."""
    with daemon.connect() as m:
        found = errors_of(
            rpc_error(
                m.edit_config, target="candidate", config=config(DANGLING), test_option="test-only"
            )
        )
        assert ("data-missing", "instance-required") in {(e.tag, e.app_tag) for e in found}
        assert channels(m, "candidate") == ["demo"]


@pytest.mark.parametrize("test_option", ["test-then-set", "set"])
def test_running_is_fully_validated_at_every_edit(daemon: Running, test_option: str) -> None:
    with daemon.connect() as m:
        with pytest.raises(RPCError) as caught:
            m.edit_config(target="running", config=config(DANGLING), test_option=test_option)
        assert ("data-missing", "instance-required") in {
            (e.tag, e.app_tag) for e in errors_of(caught.value)
        }
        assert channels(m, "running") == ["demo"]


def test_set_on_candidate_still_checks_types(daemon: Running) -> None:
    """RFC 7950 §8.3.1: syntax is checked whatever the test-option."""
    with daemon.connect() as m:
        error = rpc_error(
            m.edit_config,
            target="candidate",
            config=config(DANGLING.replace("<mode>server</mode>", "<mode>sideways</mode>")),
            test_option="set",
        )
        assert error.tag == "invalid-value"
        m.edit_config(target="candidate", config=config(DANGLING), test_option="set")
        assert sorted(channels(m, "candidate")) == ["c1", "demo"]
