"""`tf2aif serve` options take only what the backends accept, with the reason when they do not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.cli.main import build_parser, main
from tf2aif.errors import Tf2aifError
from tf2aif.image.server.options import (
    LOG_LEVELS,
    OPTION_HELP,
    PERFORMANCE_HINTS,
    resolve_options,
)


def options(*argv: str, env: dict[str, str] | None = None):
    return resolve_options(build_parser().parse_args(["serve", "a", *argv]), env=env or {})


@pytest.mark.parametrize(
    "argv, reason",
    [
        (["--device", "GUP"], 'did you mean "gpu"'),
        (["--device", "tpu"], "is not a device"),
        (["--device", "MULTI:"], "HETERO"),
        (["--performance-hint", "throughput_"], 'did you mean "THROUGHPUT"'),
        (["--log-level", "warn"], 'did you mean "warning"'),
        (["--log-level", "trace"], "critical, error, warning, info, debug"),
        (["--workers", "0"], "must be >= 1"),
        (["--port", "0"], "fixed port"),
        (["--port", "65536"], "1..65535"),
        (["--grpc-port", "65536"], "0: no gRPC endpoint"),
        (["--max-batch-size", "two"], "invalid literal for int() with base 10: 'two'"),
    ],
)
def test_a_bad_value_is_a_usage_error_with_its_reason(argv, reason, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "a", *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and argv[0] in err and reason in err, err


def test_values_are_canonical_whatever_their_case():
    chosen = options("--performance-hint", "throughput", "--log-level", "DEBUG")
    assert (chosen.performance_hint, chosen.log_level) == ("THROUGHPUT", "debug")
    for device in ("auto", "CPU", "gpu.1", "AUTO:GPU,CPU", "HETERO:GPU.0,CPU", "tensorrt"):
        assert options("--device", device).device == device


def test_grpc_port_zero_means_no_grpc_endpoint_and_may_not_clash_with_http():
    assert options("--grpc-port", "0").grpc_port == 0
    with pytest.raises(Tf2aifError, match="also the HTTP --port"):
        options("--port", "9000", "--grpc-port", "9000")


def test_environment_values_get_the_same_reasons():
    for env, reason in (
        ({"TF2AIF_DEVICE": "GUP"}, "TF2AIF_DEVICE='GUP': 'GUP' is not a device"),
        ({"TF2AIF_WORKERS": "0"}, "must be >= 1"),
        ({"TF2AIF_LOG_LEVEL": "loud"}, "critical, error"),
    ):
        with pytest.raises(Tf2aifError, match=reason.replace("'", ".")):
            options(env=env)


@pytest.mark.fuzz
@given(
    st.sampled_from(["port", "grpc_port", "workers", "device", "performance_hint", "log_level"]),
    st.one_of(
        st.text(max_size=16),
        st.sampled_from([*PERFORMANCE_HINTS, *LOG_LEVELS, "0", "-1", "65536", "gpu.2"]),
        st.integers(-(10**6), 10**6).map(str),
    ),
)
def test_generated_values_parse_to_what_the_server_can_use_or_are_refused(name, text):
    parse = OPTION_HELP[name][0]
    try:
        value = parse(text)
    except ValueError as exc:
        assert str(exc)  # a reason, never an empty message
        return
    if name in ("port", "grpc_port"):
        assert (0 if name == "grpc_port" else 1) <= value <= 65535
    elif name == "workers":
        assert value >= 1
    elif name == "performance_hint":
        assert value in PERFORMANCE_HINTS
    elif name == "log_level":
        assert value in LOG_LEVELS
    else:
        assert value == text.strip() and value
