#include "net/url.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace mailtrail::netio {
namespace {

TEST(ParseUrl, PostGridProductionUrl) {
  const Url url = ParseUrl("https://api.postgrid.com/print-mail/v1");
  EXPECT_EQ(url.scheme, "https");
  EXPECT_EQ(url.host, "api.postgrid.com");
  EXPECT_EQ(url.port, 443);
  EXPECT_EQ(url.path_prefix, "/print-mail/v1");
  EXPECT_TRUE(url.Tls());
  EXPECT_EQ(url.HostHeader(), "api.postgrid.com");
}

TEST(ParseUrl, SimulatorUrlWithPortAndTrailingSlash) {
  const Url url = ParseUrl("http://127.0.0.1:40123/print-mail/v1/");
  EXPECT_EQ(url.scheme, "http");
  EXPECT_EQ(url.host, "127.0.0.1");
  EXPECT_EQ(url.port, 40123);
  EXPECT_EQ(url.path_prefix, "/print-mail/v1");
  EXPECT_FALSE(url.Tls());
  EXPECT_EQ(url.HostHeader(), "127.0.0.1:40123");
}

TEST(ParseUrl, DefaultsAndCaseFolding) {
  EXPECT_EQ(ParseUrl("http://Example.COM").port, 80);
  EXPECT_EQ(ParseUrl("http://Example.COM").host, "example.com");
  EXPECT_EQ(ParseUrl("HTTPS://example.com/").path_prefix, "");
  EXPECT_EQ(ParseUrl("HTTPS://example.com/").scheme, "https");
  EXPECT_EQ(ParseUrl("https://example.com:443/x").HostHeader(), "example.com");
  EXPECT_EQ(ParseUrl("https://example.com:8443/x").HostHeader(), "example.com:8443");
}

TEST(ParseUrl, Ipv6Literal) {
  const Url url = ParseUrl("http://[::1]:8080/api");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 8080);
  EXPECT_EQ(url.path_prefix, "/api");
  EXPECT_EQ(url.HostHeader(), "[::1]:8080");
  EXPECT_EQ(ParseUrl("https://[::1]").port, 443);
}

TEST(ParseUrl, RejectsWhatIsNotABaseUrl) {
  for (const char* bad :
       {"", "api.postgrid.com", "ftp://host/", "https://", "https:///path", "https://host:/x",
        "https://host:0", "https://host:65536", "https://host:12ab", "https://user:pw@host/",
        "https://host/x?y=1", "https://host/x#frag", "http://[::1/x", "http://[::1]x/"}) {
    EXPECT_THROW(ParseUrl(bad), std::invalid_argument) << bad;
  }
}

TEST(ParseUrl, ErrorNamesTheProblem) {
  try {
    ParseUrl("ftp://host/");
    FAIL();
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("http or https"), std::string::npos) << error.what();
  }
}

TEST(PercentEncode, KeepsUnreservedAndEncodesTheRest) {
  EXPECT_EQ(PercentEncode("letter_AbC-1.2~x"), "letter_AbC-1.2~x");
  EXPECT_EQ(PercentEncode("a b/c?d&e=f"), "a%20b%2Fc%3Fd%26e%3Df");
  EXPECT_EQ(PercentEncode(R"({"k":"v"})"), "%7B%22k%22%3A%22v%22%7D");
  EXPECT_EQ(PercentEncode("\xC3\xA9"), "%C3%A9");
  EXPECT_EQ(PercentEncode(""), "");
}

}  // namespace
}  // namespace mailtrail::netio
