"""The hosted Billing API docs' sample requests, pointed at a local voxmeter, just work.

The samples send `wolkvox_server` (underscore) and `wolkvox-token` headers, or name the server in
the `wv<server>.wolkvox.com` host. Each runs as a separate program, as a user would run it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.harness import SPEC_CATALOG, Tenant, VoxServer, aggregate

IVR = ["2.01", "0.1", "7"]
CALLS = [None, None, 3]


@pytest.fixture(scope="module")
def tenant(server: VoxServer) -> Tenant:
    """An operation on server 9901 with IVR minutes and IVR calls this month."""
    tenant = server.tenant(server="9901")
    now = datetime.now(UTC).isoformat()
    events: list[dict[str, object]] = [
        {"id": f"ivr-{i}", "product": "ivr_minutes", "time": now, "quantity": q}
        for i, q in enumerate(IVR)
    ]
    for i, q in enumerate(CALLS):
        events.append(
            {"id": f"call-{i}", "product": "ivr_calls", "time": now}
            | ({"quantity": q} if q is not None else {})
        )
    reply = server.post_events(tenant.token, events)
    assert reply.status_code == 200, reply.text
    return tenant


def expected_rows(name: str) -> list[tuple[str, str, str]]:
    figures = {
        "ivr_minutes": aggregate("sum_round_up", IVR),
        "ivr_calls": aggregate("count", CALLS),
    }
    return [(name, title, figures.get(api, "0")) for api, title, _ in SPEC_CATALOG]


def check_reply(text: str, name: str, api: str) -> None:
    body = json.loads(text)
    assert body["code"] == 200, body
    assert body["error"] is None, body
    assert body["msg"] == "Information found for the current month", body
    today = datetime.now(UTC).date().isoformat()
    rows = [(r["operation"], r["description"], r["items"]) for r in body["data"]]
    for row in body["data"]:
        assert row["date"] == today, row
        assert isinstance(row["items"], str), row
    every = expected_rows(name)
    if api == "all":
        assert rows == every
    else:
        index = [a for a, _, _ in SPEC_CATALOG].index(api)
        assert rows == [every[index]]


def curl(*args: str) -> tuple[int, str]:
    """Run curl; returns (HTTP status, body)."""
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--write-out", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


@pytest.mark.parametrize("api", ["ivr_minutes", "ivr_calls", "rec_minutes", "all"])
def test_curl_sample_with_server_and_token_headers(
    server: VoxServer, tenant: Tenant, api: str
) -> None:
    status, body = curl(
        "--location",
        "--globoff",
        f"{server.base}/api/v2/billing.php?api={api}",
        "-H",
        "wolkvox_server: 9901",
        "-H",
        f"wolkvox-token: {tenant.token}",
    )
    assert status == 200, body
    check_reply(body, tenant.name, api)


def test_curl_sample_with_the_hosted_url_shape(server: VoxServer, tenant: Tenant) -> None:
    # https://wv{server}.wolkvox.com/api/v2/billing.php, resolved to the local server
    for host, wanted in (("wv9901.wolkvox.com", 200), ("wv9902.wolkvox.com", 403)):
        status, body = curl(
            "--connect-to",
            f"{host}:80:127.0.0.1:{server.port}",
            f"http://{host}/api/v2/billing.php?api=ivr_minutes",
            "--header",
            f"wolkvox-token: {tenant.token}",
        )
        assert status == wanted, body
        if wanted == 200:
            check_reply(body, tenant.name, "ivr_minutes")
        else:
            assert json.loads(body) == {
                "code": 403,
                "error": "FORBIDDEN",
                "msg": "PLEASE VALIDATE TOKEN",
                "data": [],
            }


def test_curl_sample_errors_are_readable(server: VoxServer, tenant: Tenant) -> None:
    url = f"{server.base}/api/v2/billing.php?api=ivr_minutes"
    status, body = curl(url, "-H", "wolkvox_server: 9902", "-H", f"wolkvox-token: {tenant.token}")
    assert (status, json.loads(body)["msg"]) == (403, "PLEASE VALIDATE TOKEN")
    status, body = curl(url, "-H", "wolkvox_server: 9901")
    assert (status, json.loads(body)["msg"]) == (401, "PLEASE ENTER THE WOLKVOX-TOKEN")


PYTHON_SAMPLE = """\
import sys

import requests

url = sys.argv[1]

payload = {}
headers = {
  'wolkvox_server': sys.argv[2],
  'wolkvox-token': sys.argv[3],
}

response = requests.request("GET", url, headers=headers, data=payload)

print(response.text)
"""


@pytest.mark.parametrize("api", ["ivr_minutes", "all"])
def test_python_requests_sample(
    server: VoxServer, tenant: Tenant, tmp_path: Path, api: str
) -> None:
    script = tmp_path / "sample.py"
    script.write_text(PYTHON_SAMPLE)
    url = f"{server.base}/api/v2/billing.php?api={api}"
    result = subprocess.run(
        [sys.executable, str(script), url, "9901", tenant.token],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    check_reply(result.stdout, tenant.name, api)
    mismatch = subprocess.run(
        [sys.executable, str(script), url, "9902", tenant.token],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(mismatch.stdout)["msg"] == "PLEASE VALIDATE TOKEN"


JAVA_SAMPLE = """\
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Sample {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .build();
        HttpRequest request = HttpRequest.newBuilder()
            .uri(URI.create(args[0]))
            .method("GET", HttpRequest.BodyPublishers.noBody())
            .header("wolkvox_server", args[1])
            .header("wolkvox-token", args[2])
            .build();
        HttpResponse<String> response =
            client.send(request, HttpResponse.BodyHandlers.ofString());
        System.out.println(response.statusCode());
        System.out.println(response.body());
    }
}
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="no java on this machine")
def test_java_sample(server: VoxServer, tenant: Tenant, tmp_path: Path) -> None:
    # the docs' Java sample uses OkHttp; this is the same request with the JDK's own client
    source = tmp_path / "Sample.java"
    source.write_text(JAVA_SAMPLE)
    url = f"{server.base}/api/v2/billing.php?api=all"
    result = subprocess.run(
        ["java", str(source), url, "9901", tenant.token],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    status, _, body = result.stdout.partition("\n")
    assert status == "200", result.stdout
    check_reply(body, tenant.name, "all")
