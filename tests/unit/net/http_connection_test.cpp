// HttpConnection against servers in the same io_context: keep-alive reuse, Connection: close,
// the body cap, deadlines, refused connects, and TLS with certificate, host name and SNI checks
// (a throwaway self-signed certificate made with OpenSSL at run time).
#include "net/http_connection.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace mailtrail::netio {
namespace {

using namespace std::chrono_literals;
using tcp = net::ip::tcp;

enum class Mode { kEcho, kClose, kBigBody, kSilent };

struct ServerState {
  int connections = 0;
  int requests = 0;
  std::string last_host;
  std::string sni;
};

template <class Stream>
net::awaitable<void> Serve(Stream* stream, Mode mode, ServerState* state) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> request;
    beast::error_code ec;
    co_await http::async_read(*stream, buffer, request,
                              net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    ++state->requests;
    state->last_host = std::string(request[http::field::host]);
    if (mode == Mode::kSilent) {
      net::steady_timer timer(co_await net::this_coro::executor);
      timer.expires_after(5s);
      co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      co_return;
    }
    http::response<http::string_body> response(http::status::ok, 11);
    response.body() = mode == Mode::kBigBody
                          ? std::string(10000, 'x')
                          : std::string(request.target()) + " #" + std::to_string(state->requests);
    response.keep_alive(mode != Mode::kClose);
    response.prepare_payload();
    co_await http::async_write(*stream, response, net::redirect_error(net::use_awaitable, ec));
    if (ec || mode == Mode::kClose) co_return;
  }
}

net::awaitable<void> PlainServer(tcp::acceptor* acceptor, Mode mode, ServerState* state) {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket =
        co_await acceptor->async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    ++state->connections;
    beast::tcp_stream stream(std::move(socket));
    co_await Serve(&stream, mode, state);  // one connection at a time is enough here
  }
}

net::awaitable<void> TlsServer(tcp::acceptor* acceptor, ssl::context* context, ServerState* state) {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket =
        co_await acceptor->async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    ++state->connections;
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *context);
    beast::get_lowest_layer(stream).expires_after(5s);
    co_await stream.async_handshake(ssl::stream_base::server,
                                    net::redirect_error(net::use_awaitable, ec));
    if (ec) continue;  // the client refused our certificate
    if (const char* name = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name)) {
      state->sni = name;
    }
    co_await Serve(&stream, Mode::kEcho, state);
  }
}

tcp::acceptor Listen(net::io_context& ioc) {
  tcp::acceptor acceptor(ioc);
  const tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
  acceptor.open(endpoint.protocol());
  acceptor.bind(endpoint);
  acceptor.listen();
  return acceptor;
}

/// Runs `task` on `ioc` until it finishes (deadline 10 s); returns its exception, if any.
template <class T>
std::exception_ptr Drive(net::io_context& ioc, net::awaitable<T> task, std::optional<T>* out) {
  bool done = false;
  std::exception_ptr failure;
  net::co_spawn(ioc, std::move(task), [&](std::exception_ptr error, T value) {
    failure = error;
    if (!error) *out = std::move(value);
    done = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_until(deadline);
  if (!done) ADD_FAILURE() << "task did not finish in time";
  return failure;
}

beast::error_code CodeOf(std::exception_ptr failure) {
  try {
    if (failure) std::rethrow_exception(failure);
  } catch (const boost::system::system_error& error) {
    return error.code();
  } catch (const std::exception& error) {
    ADD_FAILURE() << "unexpected exception " << error.what();
  }
  return {};
}

struct Exchange {
  std::vector<std::string> bodies;
  bool reusable = false;
  std::size_t sent = 0;
};

net::awaitable<Exchange> TwoRequests(Url url, ssl::context* tls, std::size_t body_limit,
                                     std::chrono::milliseconds timeout) {
  auto connection = co_await HttpConnection::Connect(url, tls, timeout);
  Exchange exchange;
  for (const char* target : {"/first", "/second"}) {
    HttpConnection::Request request(http::verb::get, target, 11);
    auto response = co_await connection->Send(std::move(request), timeout, body_limit);
    exchange.bodies.push_back(response.body());
    if (!connection->Reusable()) break;
  }
  exchange.reusable = connection->Reusable();
  exchange.sent = connection->RequestsSent();
  co_return exchange;
}

Url LocalUrl(const tcp::acceptor& acceptor, const char* scheme = "http",
             const char* host = "127.0.0.1") {
  return ParseUrl(std::string(scheme) + "://" + host + ":" +
                  std::to_string(acceptor.local_endpoint().port()));
}

TEST(HttpConnection, KeepsTheConnectionAliveAcrossRequests) {
  net::io_context ioc;
  auto acceptor = Listen(ioc);
  ServerState state;
  net::co_spawn(ioc, PlainServer(&acceptor, Mode::kEcho, &state), net::detached);
  std::optional<Exchange> exchange;
  ASSERT_FALSE(Drive(ioc, TwoRequests(LocalUrl(acceptor), nullptr, 1 << 20, 5000ms), &exchange));
  ASSERT_TRUE(exchange);
  EXPECT_EQ(exchange->bodies, (std::vector<std::string>{"/first #1", "/second #2"}));
  EXPECT_TRUE(exchange->reusable);
  EXPECT_EQ(exchange->sent, 2u);
  EXPECT_EQ(state.connections, 1);
  EXPECT_EQ(state.last_host, "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()));
}

TEST(HttpConnection, ConnectionCloseMakesItNotReusable) {
  net::io_context ioc;
  auto acceptor = Listen(ioc);
  ServerState state;
  net::co_spawn(ioc, PlainServer(&acceptor, Mode::kClose, &state), net::detached);
  std::optional<Exchange> exchange;
  ASSERT_FALSE(Drive(ioc, TwoRequests(LocalUrl(acceptor), nullptr, 1 << 20, 5000ms), &exchange));
  ASSERT_TRUE(exchange);
  EXPECT_EQ(exchange->bodies.size(), 1u);
  EXPECT_FALSE(exchange->reusable);
}

TEST(HttpConnection, BodyOverTheLimitIsAnError) {
  net::io_context ioc;
  auto acceptor = Listen(ioc);
  ServerState state;
  net::co_spawn(ioc, PlainServer(&acceptor, Mode::kBigBody, &state), net::detached);
  std::optional<Exchange> exchange;
  const auto failure =
      Drive(ioc, TwoRequests(LocalUrl(acceptor), nullptr, 1000, 5000ms), &exchange);
  EXPECT_EQ(CodeOf(failure), http::error::body_limit);
  if (exchange) {
    ADD_FAILURE() << "read " << exchange->bodies.size() << " bodies, first of "
                  << exchange->bodies.at(0).size() << " bytes";
  }
}

TEST(HttpConnection, ReadDeadlineFires) {
  net::io_context ioc;
  auto acceptor = Listen(ioc);
  ServerState state;
  net::co_spawn(ioc, PlainServer(&acceptor, Mode::kSilent, &state), net::detached);
  std::optional<Exchange> exchange;
  const auto failure = Drive(ioc, TwoRequests(LocalUrl(acceptor), nullptr, 1000, 100ms), &exchange);
  EXPECT_EQ(CodeOf(failure), beast::error::timeout);
  // (Had the deadline not fired, the silent server's close after 5 s would give end_of_stream.)
}

TEST(HttpConnection, RefusedConnectIsAnError) {
  net::io_context ioc;
  Url url;
  {
    auto acceptor = Listen(ioc);
    url = LocalUrl(acceptor);
  }
  std::optional<Exchange> exchange;
  EXPECT_EQ(CodeOf(Drive(ioc, TwoRequests(url, nullptr, 1000, 1000ms), &exchange)),
            net::error::connection_refused);
}

TEST(HttpConnection, HttpsWithoutATlsContextIsRefused) {
  net::io_context ioc;
  std::optional<Exchange> exchange;
  const auto failure =
      Drive(ioc, TwoRequests(ParseUrl("https://127.0.0.1:9"), nullptr, 1000, 1000ms), &exchange);
  EXPECT_THROW(std::rethrow_exception(failure), std::invalid_argument);
}

/// A self-signed certificate and key (PEM) for `dns_name`.
struct TestCertificate {
  std::string certificate_pem;
  std::string key_pem;
};

std::string ToPem(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

TestCertificate MakeCertificate(const std::string& dns_name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(dns_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  const std::string san = "DNS:" + dns_name;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(cert, key, EVP_sha256());

  TestCertificate out;
  BIO* cert_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, cert);
  out.certificate_pem = ToPem(cert_bio);
  BIO_free(cert_bio);
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = ToPem(key_bio);
  BIO_free(key_bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

class HttpsConnection : public ::testing::Test {
 protected:
  void StartServer(const TestCertificate& certificate) {
    server_context_.use_certificate_chain(
        net::buffer(certificate.certificate_pem.data(), certificate.certificate_pem.size()));
    server_context_.use_private_key(
        net::buffer(certificate.key_pem.data(), certificate.key_pem.size()), ssl::context::pem);
    net::co_spawn(ioc_, TlsServer(&acceptor_, &server_context_, &state_), net::detached);
  }
  ssl::context Trusting(const TestCertificate& certificate) {
    ssl::context context = MakeClientTlsContext();
    context.add_certificate_authority(
        net::buffer(certificate.certificate_pem.data(), certificate.certificate_pem.size()));
    return context;
  }

  net::io_context ioc_;
  tcp::acceptor acceptor_ = Listen(ioc_);
  ssl::context server_context_{ssl::context::tls_server};
  ServerState state_;
};

TEST_F(HttpsConnection, TrustedCertificateForTheHostWorksAndSendsSni) {
  const auto certificate = MakeCertificate("localhost");
  StartServer(certificate);
  auto client_context = Trusting(certificate);
  std::optional<Exchange> exchange;
  const auto failure = Drive(
      ioc_,
      TwoRequests(LocalUrl(acceptor_, "https", "localhost"), &client_context, 1 << 20, 5000ms),
      &exchange);
  ASSERT_FALSE(failure) << CodeOf(failure).message();
  ASSERT_TRUE(exchange);
  EXPECT_EQ(exchange->bodies, (std::vector<std::string>{"/first #1", "/second #2"}));
  EXPECT_EQ(state_.sni, "localhost");
  EXPECT_EQ(state_.connections, 1);
}

TEST_F(HttpsConnection, UntrustedCertificateIsRefused) {
  const auto certificate = MakeCertificate("localhost");
  StartServer(certificate);
  auto system_trust_only = MakeClientTlsContext();
  std::optional<Exchange> exchange;
  const auto failure = Drive(
      ioc_,
      TwoRequests(LocalUrl(acceptor_, "https", "localhost"), &system_trust_only, 1 << 20, 5000ms),
      &exchange);
  ASSERT_TRUE(failure);
  EXPECT_EQ(CodeOf(failure).category(), net::error::get_ssl_category())
      << CodeOf(failure).message();
  EXPECT_EQ(state_.requests, 0);
}

TEST_F(HttpsConnection, CertificateForAnotherHostIsRefused) {
  const auto certificate = MakeCertificate("other.invalid");
  StartServer(certificate);
  auto client_context = Trusting(certificate);  // trusted, but not for "localhost"
  std::optional<Exchange> exchange;
  const auto failure = Drive(
      ioc_,
      TwoRequests(LocalUrl(acceptor_, "https", "localhost"), &client_context, 1 << 20, 5000ms),
      &exchange);
  ASSERT_TRUE(failure);
  EXPECT_EQ(CodeOf(failure).category(), net::error::get_ssl_category())
      << CodeOf(failure).message();
  EXPECT_EQ(state_.requests, 0);
}

}  // namespace
}  // namespace mailtrail::netio
