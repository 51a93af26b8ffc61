#!/usr/bin/env python3
"""Generate signed EC2 Query API requests with botocore, as JSON vectors.

Run with the dev venv's Python (it has botocore/boto3):

    /var/lib/stratus-dev/venv/bin/python tests/gen_vectors.py > tests/vectors.json

Every request is signed at one fixed instant. Two kinds of vector:

* "signer": botocore's SigV4Auth / SigV4QueryAuth / SigV2Auth applied to an
  AWSRequest, then turned into what goes on the wire the way botocore's
  urllib3 session does (prepare(), plus the Host and Accept-Encoding headers
  http.client adds after signing, so they are unsigned unless botocore put them
  in the request itself).
* "client": a real boto3 EC2 client talking to a capture server on
  127.0.0.1, so the method, target, headers and body are exactly what arrived.

Bodies are hex so non-UTF-8 could be carried; every other field is a string.
"expect" is "ok" or the EC2 error code the verifier must answer.
"""

import datetime
import hashlib
import hmac
import base64
import http.server
import json
import sys
import threading
import time
from unittest import mock
from urllib.parse import urlsplit

import boto3
import urllib3.util
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ACCESS_KEY = "AKIDSTRATUSEXAMPLE"
SECRET_KEY = "stratus/Secret+Key/EXAMPLE0123456789abcd"
TOKEN = "FQoGZXIvYXdzEXAMPLE//token+with/special=chars"
FIXED = datetime.datetime(2026, 11, 22, 12, 34, 56)
FIXED_EPOCH = int(FIXED.replace(tzinfo=datetime.timezone.utc).timestamp())
REGION = "us-east-1"
PORT = 8773

EC2_FORM = {
    "Action": "DescribeInstances",
    "Version": "2016-11-15",
    "InstanceId.1": "i-0123456789abcdef0",
}
# Characters that encode differently under urlencode (GET params: '+' for a
# space) and under SigV4's quote(): a space, '~', '*', '/', ':' and UTF-8.
EC2_FILTER = dict(
    EC2_FORM,
    **{
        "Filter.1.Name": "tag:Name",
        "Filter.1.Value.1": "web server ~a*b/c+d é",
    },
)
FORM_CT = "application/x-www-form-urlencoded; charset=utf-8"


def fixed_time():
    """Patch botocore's clocks (SigV4 uses get_current_datetime, SigV2 time.gmtime)."""
    gm = time.gmtime(FIXED_EPOCH)
    return [
        mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: FIXED),
        mock.patch.object(botocore.auth.time, "gmtime", lambda *a: gm),
    ]


def host_header(url):
    """The Host header http.client sends: netloc without a default port."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname
    if parts.port is not None and parts.port != default:
        host = f"{host}:{parts.port}"
    return host


def to_bytes(body):
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def wire(name, version, request, expect="ok", note=""):
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    headers = [[k, v] for k, v in prepared.headers.items()]
    names = {k.lower() for k, _ in headers}
    if "host" not in names:
        headers.insert(0, ["Host", host_header(prepared.url)])
    headers.append(["Accept-Encoding", "identity"])
    return {
        "name": name,
        "kind": "signer",
        "version": version,
        "expect": expect,
        "note": note,
        "now": str(FIXED_EPOCH),
        "method": prepared.method,
        "path": parts.path or "/",
        "query": parts.query,
        "headers": headers,
        "body_hex": to_bytes(prepared.body).hex(),
    }


def creds(token=None):
    return Credentials(ACCESS_KEY, SECRET_KEY, token)


def form_post(url, data=None, headers=None):
    h = {"Content-Type": FORM_CT}
    h.update(headers or {})
    return AWSRequest(method="POST", url=url, data=dict(data or EC2_FORM), headers=h)


def sigv4(request, token=None, context=None):
    request.context.update(context or {})
    botocore.auth.SigV4Auth(creds(token), "ec2", REGION).add_auth(request)
    return request


def sigv4_query(request, expires=300):
    botocore.auth.SigV4QueryAuth(creds(), "ec2", REGION, expires=expires).add_auth(request)
    return request


def sigv2(request):
    botocore.auth.SigV2Auth(creds()).add_auth(request)
    return request


class SigV2Sha1(botocore.auth.SigV2Auth):
    """SigV2Auth with HmacSHA1, as old EC2 tools send; botocore only does SHA256."""

    def calc_signature(self, request, params):
        params["SignatureMethod"] = "HmacSHA1"
        split = urlsplit(request.url)
        path = split.path or "/"
        string_to_sign = f"{request.method}\n{split.netloc}\n{path}\n"
        pairs = []
        for key in sorted(params):
            if key == "Signature":
                continue
            quoted_key = botocore.auth.quote(key.encode("utf-8"), safe="")
            quoted_value = botocore.auth.quote(str(params[key]).encode("utf-8"), safe="-_~")
            pairs.append(f"{quoted_key}={quoted_value}")
        qs = "&".join(pairs)
        string_to_sign += qs
        digest = hmac.new(SECRET_KEY.encode(), string_to_sign.encode(), hashlib.sha1).digest()
        return qs, base64.b64encode(digest).strip().decode()


def signer_vectors():
    local = f"http://127.0.0.1:{PORT}"
    out = []
    # --- SigV4, Authorization header -------------------------------------
    out.append(wire("v4-post-root-port", "V4", sigv4(form_post(f"{local}/"))))
    out.append(wire("v4-post-services-cloud", "V4", sigv4(form_post(f"{local}/services/Cloud"))))
    out.append(wire("v4-post-services-cloud-slash", "V4", sigv4(form_post(f"{local}/services/Cloud/"))))
    out.append(wire("v4-post-no-port", "V4", sigv4(form_post("http://ec2.stratus.example/"))))
    out.append(wire("v4-post-empty-path", "V4", sigv4(form_post("http://ec2.stratus.example")),
                    note="botocore signs '/' for an empty path"))
    out.append(wire("v4-post-filter-chars", "V4", sigv4(form_post(f"{local}/", EC2_FILTER))))
    out.append(wire("v4-post-security-token", "V4", sigv4(form_post(f"{local}/"), token=TOKEN)))
    out.append(wire("v4-post-date-header", "V4",
                    sigv4(form_post(f"{local}/", headers={"Date": "placeholder"})),
                    note="with a Date header botocore drops X-Amz-Date and rewrites Date"))
    out.append(wire("v4-get-params", "V4",
                    sigv4(AWSRequest(method="GET", url=f"{local}/services/Cloud/", params=dict(EC2_FILTER))),
                    note="params are sent with urlencode ('+' for space) but signed with quote ('%20')"))
    out.append(wire("v4-get-url-query", "V4",
                    sigv4(AWSRequest(method="GET",
                                     url=f"{local}/?Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0")),
                    note="query already in the URL: botocore sorts the raw pairs without re-encoding"))
    dotted = wire("v4-get-dot-segments", "V4",
                  sigv4(AWSRequest(method="GET", url=f"{local}/services//Cloud/./x/../", params=dict(EC2_FORM))),
                  note="botocore signs remove_dot_segments(path), which also collapses '//'")
    out.append(dotted)
    # urllib3 resolves '.' and '..' before sending but keeps '//'; both must verify.
    out.append(dict(dotted, name="v4-get-dot-segments-as-sent",
                    path=urllib3.util.parse_url(f"{local}{dotted['path']}").path))
    out.append(wire("v4-get-unsigned-payload", "V4",
                    sigv4(AWSRequest(method="GET", url="https://ec2.stratus.example/", params=dict(EC2_FORM)),
                          context={"payload_signing_enabled": False}),
                    note="X-Amz-Content-SHA256: UNSIGNED-PAYLOAD, no body"))
    out.append(wire("v4-post-unsigned-payload-with-body", "V4",
                    sigv4(form_post("https://ec2.stratus.example/"), context={"payload_signing_enabled": False}),
                    expect="InvalidParameterValue",
                    note="refused by policy: the body carries the API parameters"))
    # --- SigV4, presigned query ------------------------------------------
    out.append(wire("v4-query-get-params", "V4",
                    sigv4_query(AWSRequest(method="GET", url=f"{local}/", params=dict(EC2_FILTER)))))
    out.append(wire("v4-query-body-moved-to-query", "V4",
                    sigv4_query(AWSRequest(method="GET", url=f"{local}/services/Cloud", data=dict(EC2_FORM))),
                    note="SigV4QueryAuth moves form data into the query; payload hash is sha256('')"))
    out.append(wire("v4-query-no-port-3600", "V4",
                    sigv4_query(AWSRequest(method="GET", url="http://ec2.stratus.example/", params=dict(EC2_FORM)),
                                expires=3600)))
    # --- SigV2 ------------------------------------------------------------
    out.append(wire("v2-post-services-cloud", "V2", sigv2(form_post(f"{local}/services/Cloud"))))
    out.append(wire("v2-post-root-filter-chars", "V2", sigv2(form_post(f"{local}/", EC2_FILTER))))
    out.append(wire("v2-post-empty-path-no-port", "V2", sigv2(form_post("http://ec2.stratus.example"))))
    out.append(wire("v2-get-params", "V2",
                    sigv2(AWSRequest(method="GET", url=f"{local}/services/Cloud/", params=dict(EC2_FILTER)))))
    req = form_post(f"{local}/services/Cloud")
    SigV2Sha1(creds()).add_auth(req)
    out.append(wire("v2-post-hmacsha1", "V2", req,
                    note="SigV2Auth.calc_signature with hashlib.sha1 in place of sha256"))
    return out


# --- real client through a capture server ---------------------------------

CAPTURED = []
ERROR_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
    b"<Code>AuthFailure</Code><Message>captured</Message></Error></Errors>"
    b"<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
)


class Capture(http.server.BaseHTTPRequestHandler):
    def _capture(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        CAPTURED.append({
            "method": self.command,
            "path": path,
            "query": query,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_hex": body.hex(),
        })
        self.send_response(400)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(ERROR_XML)))
        self.end_headers()
        self.wfile.write(ERROR_XML)

    do_GET = do_POST = _capture

    def log_message(self, *args):
        pass


def client_vectors():
    try:
        server = http.server.HTTPServer(("127.0.0.1", PORT), Capture)
    except OSError:
        # 8773 taken: any port will do, the Host header just says which.
        server = http.server.HTTPServer(("127.0.0.1", 0), Capture)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out = []
    try:
        def run(name, version, endpoint, signature_version=None, note=""):
            config = Config(retries={"total_max_attempts": 1}, signature_version=signature_version)
            client = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint,
                                  aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                                  config=config)
            try:
                client.describe_instances(InstanceIds=["i-0123456789abcdef0"])
            except ClientError:
                pass
            vec = {"name": name, "kind": "client", "version": version, "expect": "ok",
                   "note": note, "now": str(FIXED_EPOCH)}
            vec.update(CAPTURED.pop())
            out.append(vec)
            return client

        local = f"http://127.0.0.1:{port}"
        run("client-v4-describe-instances", "V4", f"{local}/")
        run("client-v4-services-cloud", "V4", f"{local}/services/Cloud")
        run("client-v2-describe-instances", "V2", f"{local}/services/Cloud", signature_version="v2")
        client = boto3.client("ec2", region_name=REGION, endpoint_url=f"{local}/services/Cloud",
                              aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        url = client.generate_presigned_url("describe_instances",
                                            Params={"InstanceIds": ["i-0123456789abcdef0"]},
                                            ExpiresIn=300, HttpMethod="GET")
        parts = urlsplit(url)
        out.append({"name": "client-v4-presigned-url", "kind": "client", "version": "V4",
                    "expect": "ok", "note": "generate_presigned_url(HttpMethod='GET'), then a plain GET",
                    "now": str(FIXED_EPOCH), "method": "GET", "path": parts.path, "query": parts.query,
                    "headers": [["Host", host_header(url)], ["Accept-Encoding", "identity"]],
                    "body_hex": ""})
    finally:
        server.shutdown()
        server.server_close()
    return out


def main():
    patches = fixed_time()
    for p in patches:
        p.start()
    try:
        vectors = signer_vectors() + client_vectors()
    finally:
        for p in patches:
            p.stop()
    json.dump({
        "generator": "tests/gen_vectors.py",
        "botocore": botocore.__version__,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "signed_at": FIXED.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "vectors": vectors,
    }, sys.stdout, indent=1, ensure_ascii=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
