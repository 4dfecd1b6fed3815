#!/usr/bin/env python3
"""Computes the HMAC test vectors of verify_test.cpp independently of the C++ code under test
(python3 hmac/hashlib). Run: python3 tests/unit/webhook/make_vectors.py"""
import hmac, hashlib, base64, json
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
S="whsec_test_secret_0123456789"; OLD="whsec_old_secret_abcdefghij"; W="whsec_wrong_secret_zzzzzzzzz"
def jwt(h, c, key=S, alg=hashlib.sha256):
    si = b64(h.encode())+"."+b64(c.encode())
    return si+"."+b64(hmac.new(key.encode(), si.encode(), alg).digest())
def sig(key, t, body): return hmac.new(key.encode(), (t+"."+body).encode(), hashlib.sha256).hexdigest()
B='{"id":"event_123","object":"event","type":"letter.updated","live":false,"createdAt":"2023-11-14T22:13:00.000Z","data":{"id":"letter_abc","object":"letter","status":"ready"},"updatedFields":{"status":"ready"}}'
H='{"alg":"HS256","typ":"JWT"}'
C='{"type":"postcard.updated","data":{"id":"postcard_xyz","status":"processed_for_delivery"},"iat":1699999990}'
out = {
 "json_s": sig(S,"1700000000",B),
 "json_ms": sig(S,"1700000000123",B),
 "json_wrong": sig(W,"1700000000",B),
 "json_old": sig(OLD,"1700000000",B),
 "json_stale": sig(S,"1699999399",B),
 "json_future": sig(S,"1700000601",B),
 "json_edge_stale": sig(S,"1699999400",B),
 "json_notjson": sig(S,"1700000000","hello world"),
 "jwt_ok": jwt(H,C),
 "jwt_wrong": jwt(H,C,W),
 "jwt_old": jwt(H,C,OLD),
 "jwt_none": b64(b'{"alg":"none","typ":"JWT"}')+"."+b64(C.encode())+".",
 "jwt_rs256": b64(b'{"alg":"RS256","typ":"JWT"}')+"."+b64(C.encode())+"."+b64(bytes(range(256))),
 "jwt_hs512": jwt('{"alg":"HS512","typ":"JWT"}',C,S,hashlib.sha512),
 "jwt_hs512_as256": jwt('{"alg":"HS512","typ":"JWT"}',C,S),
 "jwt_stale": jwt(H,'{"type":"letter.updated","data":{"id":"letter_abc"},"iat":1699999399}'),
 "jwt_future": jwt(H,'{"type":"letter.updated","data":{"id":"letter_abc"},"iat":1700000601}'),
 "jwt_noiat": jwt(H,'{"type":"tracker.visited","data":{"id":"tracker_1"}}'),
 "jwt_notjson": jwt(H,'hello world'),
 "jwt_iat_string": jwt(H,'{"type":"letter.updated","data":{"id":"letter_abc"},"iat":"1700000000"}'),
 "jwt_modified": jwt(H,C).split(".")[0]+"."+b64(C.replace("processed_for_delivery","cancelled").encode())+"."+jwt(H,C).split(".")[2],
 "sha_B": hashlib.sha256(B.encode()).hexdigest(),
}
for k,v in out.items(): print(k, v)
