#include "signing.hpp"

#include <gtest/gtest.h>

namespace mailtrail::sim {
namespace {

// RFC 4231 test case 2.
TEST(Signing, HmacSha256MatchesRfc4231) {
  EXPECT_EQ(HexLower(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// Computed independently with:
//   echo -n '1700000000123.{"id":"event_1","object":"event","type":"letter.updated"}' |
//     openssl dgst -sha256 -hmac 'whsec_sim_test_secret_0123456789'
// (python3's hmac.new(secret, msg, hashlib.sha256).hexdigest() gives the same value).
TEST(Signing, PostGridSignatureMatchesOpensslCli) {
  EXPECT_EQ(PostGridSignature("whsec_sim_test_secret_0123456789", 1700000000123,
                              R"({"id":"event_1","object":"event","type":"letter.updated"})"),
            "t=1700000000123,v1="
            "353f65f4424a10b89548296eec81d1c96dbc4deb8c22051191166ea0c322fcc1");
}

TEST(Signing, Base64UrlHasNoPaddingAndUrlAlphabet) {
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff\xfe"), "-__-");
}

// python3:
//   b64 = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
//   si = b64(header) + "." + b64(claims)
//   si + "." + b64(hmac.new(secret, si.encode(), hashlib.sha256).digest())
TEST(Signing, JwtHs256MatchesPythonComputation) {
  EXPECT_EQ(MakeJwtHs256(kJwtHeaderHs256,
                         R"({"type":"letter.updated","data":{"id":"letter_1"},"iat":1648136440})",
                         "whsec_sim_test_secret_0123456789"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
            "eyJ0eXBlIjoibGV0dGVyLnVwZGF0ZWQiLCJkYXRhIjp7ImlkIjoibGV0dGVyXzEifSwiaWF0IjoxNjQ4MTM2"
            "NDQwfQ.W97QCbPChRk8wo3pi5SymuxG2l9ttC-DrMZ_CcTOomg");
}

}  // namespace
}  // namespace mailtrail::sim
