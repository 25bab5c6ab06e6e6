"""Rate-limit settings: `limits` notation checked at start-up, ``off``, and the fail mode."""

import pytest
from pydantic import ValidationError

from app.settings import Settings
from domain.rate_limits import Bucket

pytestmark = pytest.mark.usefixtures("hermetic_settings")


def test_the_defaults_limit_every_bucket_in_memory_failing_open_in_dev() -> None:
    settings = Settings()

    assert settings.rate_limits == {
        Bucket.READ: "600/minute",
        Bucket.WRITE: "60/minute",
        Bucket.GENERATE: "10/minute",
    }
    assert settings.redis_url is None
    assert settings.rate_limit_fails_open is True


@pytest.mark.parametrize("text", ["30/minute", "30 per minute", "10/5 seconds", " 2/day "])
def test_the_notation_of_limits_is_accepted(text: str) -> None:
    assert Settings(rate_limit_generate=text).rate_limits[Bucket.GENERATE] == text.strip()


@pytest.mark.parametrize("text", ["off", "OFF", " Off "])
def test_off_in_any_case_disables_that_bucket_only(text: str) -> None:
    settings = Settings(rate_limit_read=text)

    assert settings.rate_limits[Bucket.READ] is None
    assert settings.rate_limits[Bucket.GENERATE] == "10/minute"


def test_a_limit_read_from_the_environment_is_checked_like_any_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTXFY_RATE_LIMIT_WRITE", "5/hour")
    monkeypatch.setenv("CTXFY_RATE_LIMIT_GENERATE", "off")

    limits = Settings().rate_limits
    assert (limits[Bucket.WRITE], limits[Bucket.GENERATE]) == ("5/hour", None)


@pytest.mark.parametrize(
    "variable", ["CTXFY_RATE_LIMIT_READ", "CTXFY_RATE_LIMIT_WRITE", "CTXFY_RATE_LIMIT_GENERATE"]
)
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("lots", id="not-a-limit"),
        pytest.param("30/fortnight", id="unknown-unit"),
        pytest.param("0/minute", id="zero"),
        pytest.param("1/second;60/minute", id="two-limits"),
        pytest.param("", id="empty"),
    ],
)
def test_a_bad_limit_stops_start_up_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, text: str
) -> None:
    monkeypatch.setenv(variable, text)

    with pytest.raises(ValidationError, match=f"{variable} must be one limit like 600/minute"):
        Settings()


@pytest.mark.parametrize(
    ("env", "fail_open", "expected"),
    [
        ("dev", None, True),
        ("staging", None, False),
        ("prod", None, False),
        ("prod", True, True),
        ("dev", False, False),
    ],
)
def test_the_fail_mode_defaults_to_open_in_dev_only_unless_set(
    env: str, fail_open: bool | None, expected: bool
) -> None:
    settings = Settings(
        env=env,
        allowed_hosts="ctxfy.example.com",
        argon2_time_cost=2,  # what prod demands
        argon2_memory_cost_kib=19_456,
        rate_limit_fail_open=fail_open,
    )

    assert settings.rate_limit_fails_open is expected


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://user:pw@cache:6380"])
def test_a_redis_url_is_taken_as_a_secret(url: str) -> None:
    settings = Settings(redis_url=url)

    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == url
    assert url not in repr(settings)


def test_an_empty_redis_url_means_memory() -> None:
    assert Settings(redis_url="").redis_url is None


def test_a_redis_url_of_another_scheme_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError, match="CTXFY_REDIS_URL must start with redis://") as info:
        Settings(redis_url="http://user:secret@cache:6379")

    assert "secret" not in str(info.value)
