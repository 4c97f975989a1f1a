"""One root for every error a user can see, and settings that name what is wrong."""

from __future__ import annotations

import pytest

from band import App
from band._runtime.options import ServiceOptions
from band.errors import BandError, ConfigError, RPCError


def test_every_error_a_user_can_see_is_a_band_error() -> None:
    from band.cli.devstack import StartFailed
    from band.cli.target import Unreachable
    from band.demo.edge import EdgeUnreachable
    from band.panel.config import PanelConfigError
    from band.response import BadResponse
    from band.store.backend import StoreError
    from band.wire import DecodeError
    from broker.link import LinkDown
    from broker.objects import StoreTimeout
    from broker.qs import QsError
    from broker.request import BadHit
    from broker.upload import UploadUnavailable

    for kind in (DecodeError, BadResponse, StoreError, PanelConfigError, Unreachable, StartFailed, EdgeUnreachable,
                 LinkDown, StoreTimeout, QsError, BadHit, UploadUnavailable, ConfigError, RPCError):
        assert issubclass(kind, BandError), kind
    # what they were before stays true, so existing `except ValueError` keeps working
    assert issubclass(DecodeError, ValueError) and issubclass(PanelConfigError, ValueError)
    assert issubclass(Unreachable, ConnectionError) and issubclass(LinkDown, ConnectionError)


def test_rpc_error_keeps_its_code_once() -> None:
    exc = RPCError("link exists", 409)
    assert exc.code == 409 and not hasattr(exc, "status")


@pytest.mark.parametrize(("settings", "env", "named"), [
    ({}, {"BAND_MAX_INFLIGHT": "lots"}, "$BAND_MAX_INFLIGHT must be a whole number, got 'lots'"),
    ({}, {"BAND_MAX_INFLIGHT": "0"}, "$BAND_MAX_INFLIGHT must be at least 1, got '0'"),
    ({}, {"BAND_CALL_TIMEOUT": "0"}, "$BAND_CALL_TIMEOUT must be above 0, got '0'"),
    ({}, {"BAND_DRAIN_TIMEOUT": "-1"}, "$BAND_DRAIN_TIMEOUT must be at least 0, got '-1'"),
    ({"max_inflight": "many"}, {}, "setting 'max_inflight' must be a whole number, got 'many'"),
    ({"call_timeout": True}, {}, "setting 'call_timeout' must be a number, got True"),
])
def test_a_bad_runtime_setting_is_a_config_error_naming_it(settings: dict[str, object], env: dict[str, str], named: str) -> None:
    app = App("knobs", settings=settings)
    with pytest.raises(ConfigError) as caught:
        ServiceOptions.from_app(app, env)
    assert str(caught.value) == named


def test_zero_is_a_value_not_unset() -> None:
    options = ServiceOptions.from_app(App("knobs", settings={"drain_timeout": 0}), {"BAND_DRAIN_TIMEOUT": "5"})
    assert options.drain_timeout_s == 0.0, "drain_timeout: 0 stops without waiting; it fell through to the default"
    from_env = ServiceOptions.from_app(App("knobs"), {"BAND_DRAIN_TIMEOUT": "0", "BAND_MAX_INFLIGHT": " 12 "})
    assert (from_env.drain_timeout_s, from_env.max_inflight) == (0.0, 12)
    assert ServiceOptions.from_app(App("knobs"), {}) == ServiceOptions()
