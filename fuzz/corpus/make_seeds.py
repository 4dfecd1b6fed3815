#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets into fuzz/corpus/<target>/ from the test
fixtures (tests/data/*.json, config/mailtrail.yaml) and a few hand-written inputs. Webhook seeds
are signed with webhook_fuzz.cpp's secrets and clock (python3 hmac, independent of the C++ code),
so the fuzzer starts from genuine deliveries. Idempotent. Run: python3 fuzz/corpus/make_seeds.py"""
import base64
import hashlib
import hmac
import json
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SECRET = "whsec_fuzz_secret_0123456789"
OLD_SECRET = "whsec_fuzz_old_secret_abcdef"
NOW = 1700000000  # webhook_fuzz.cpp's kNow


def reset(target):
    d = HERE / target
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def write(d, name, data):
    (d / name).write_bytes(data.encode() if isinstance(data, str) else data)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(header, claims, key=SECRET):
    signing_input = b64(header.encode()) + "." + b64(claims.encode())
    mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def sig(key, t, body):
    return hmac.new(key.encode(), (t + "." + body).encode(), hashlib.sha256).hexdigest()


fixtures = sorted((ROOT / "tests" / "data").glob("*.json"))

# json_mapping: every fixture, plus each list item on its own and a few edge documents.
d = reset("json_mapping")
for f in fixtures:
    text = f.read_text()
    write(d, f.name, text)
    doc = json.loads(text)
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        for i, item in enumerate(doc["data"][:3]):
            write(d, f"{f.stem}_item{i}.json", json.dumps(item))
for name, text in {
    "empty_list.json": '{"object":"list","limit":10,"skip":0,"totalCount":0,"data":[]}',
    "minimal_letter.json": '{"id":"letter_1","object":"letter","live":false,"status":"ready"}',
    "truncated.json": '{"id":"letter_1","object":"letter","live":fa',
    "not_json.txt": "hello",
}.items():
    write(d, name, text)

# webhook: first line = PostGrid-Signature value(s) ('\r'-separated), empty = none; rest = body.
d = reset("webhook")
bodies = []
for f in fixtures:
    doc = json.loads(f.read_text())
    if isinstance(doc, dict) and isinstance(doc.get("id"), str) and "_" in doc["id"]:
        prefix = doc["id"].split("_")[0]
        event_type = {"return": "return_envelope_order", "self": "self_mailer",
                      "snap": "snap_pack"}.get(prefix, prefix)
        bodies.append((f.stem, json.dumps({"id": "event_" + f.stem, "object": "event",
                                           "type": event_type + ".updated", "live": False,
                                           "createdAt": "2023-11-14T22:13:00.000Z",
                                           "data": doc}, separators=(",", ":"))))
bodies.append(("tracker", '{"id":"event_t","object":"event","type":"tracker.visited",'
                          '"data":{"id":"tracker_1"}}'))
for stem, body in bodies[:8]:
    t = str(NOW)
    write(d, f"json_{stem}", f"t={t},v1={sig(SECRET, t, body)}\n{body}")
    claims = json.loads(body)
    claims["iat"] = NOW - 10
    write(d, f"jwt_{stem}",
          "\n" + jwt('{"alg":"HS256","typ":"JWT"}', json.dumps(claims, separators=(",", ":"))))
body = bodies[0][1]
write(d, "json_millis_old_secret", f"t={NOW}123,v1={sig(OLD_SECRET, str(NOW) + '123', body)}\n{body}")
write(d, "json_two_v1", f"t={NOW},v1={'0' * 64},v1={sig(SECRET, str(NOW), body)}\n{body}")
write(d, "json_duplicate_header", f"t={NOW},v1={sig(SECRET, str(NOW), body)}\rt=1\n{body}")
write(d, "json_stale", f"t={NOW - 601},v1={sig(SECRET, str(NOW - 601), body)}\n{body}")
write(d, "jwt_none", "\n" + b64(b'{"alg":"none"}') + "." + b64(b'{"type":"letter.updated"}') + ".")
write(d, "garbage", "\nhello world")

# config: the documented defaults, the dev config, and small variations.
d = reset("config")
for f in sorted((ROOT / "config").glob("*.yaml")):
    write(d, f.name, f.read_text())
for name, text in {
    "empty.yaml": "",
    "unknown_key.yaml": "postgrid:\n  nope: 1\n",
    "bad_duration.yaml": "sync:\n  interval: 1h30m\n",
    "flow.yaml": "{postgrid: {base_url: 'http://127.0.0.1:1'}, webhook: {secrets: [a, b]}}\n",
    "anchors.yaml": "a: &x {k: v}\nb: *x\n",
}.items():
    write(d, name, text)

# units: durations and sizes, valid and not.
d = reset("units")
for i, text in enumerate(["0", "0s", "500ms", "2s", "15m", "1h", "14d", "36500d", "36501d",
                          "3153600000000ms", "007s", "1h30m", "-1s", "1.5s", "64B", "512KiB",
                          "1MiB", "1GiB", "10KB", "5MB", "2GB", "18446744073709551615B",
                          "18446744073709551616B", "1TiB", ""]):
    write(d, f"u{i:02d}", text)

# timestamp: the forms ParseTimestamp accepts and some it refuses.
d = reset("timestamp")
for i, text in enumerate(["2022-05-11T16:03:20.974Z", "2022-05-11T16:03:20.974512Z",
                          "2022-05-11T16:03:20Z", "2022-05-11T16:03:20.123456789+02:00",
                          "2022-05-11T16:03:20-0530", "2022-05-11", "0001-01-01T00:00:00Z",
                          "9999-12-31T23:59:59.999999Z", "2024-02-29T12:00:00Z",
                          "2023-02-29T12:00:00Z", "2022-05-11 16:03:20Z", "2022-05-11t16:03:20z"]):
    write(d, f"t{i:02d}", text)
