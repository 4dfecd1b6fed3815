#include "pg_test_database.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <pqxx/pqxx>
#include <random>
#include <stdexcept>

namespace mailtrail::testing {

std::string ServerDsn() {
  const char* dsn = std::getenv("MAILTRAIL_TEST_DSN");
  if (dsn == nullptr || *dsn == '\0') {
    throw std::runtime_error(
        "MAILTRAIL_TEST_DSN is not set: run pg tests through scripts/pg_tmp.sh "
        "(scripts/test.sh does), e.g. scripts/pg_tmp.sh ctest --test-dir build -L pg");
  }
  return dsn;
}

std::string DsnForDatabase(const std::string& server_dsn, const std::string& database) {
  const auto scheme_end = server_dsn.find("://");
  if (scheme_end == std::string::npos) {
    throw std::runtime_error("MAILTRAIL_TEST_DSN must be a postgresql:// URI");
  }
  const auto query = server_dsn.find('?', scheme_end);
  const auto path = server_dsn.find('/', scheme_end + 3);
  const std::string head = path == std::string::npos || (query != std::string::npos && path > query)
                               ? server_dsn.substr(0, query)
                               : server_dsn.substr(0, path);
  const std::string tail = query == std::string::npos ? "" : server_dsn.substr(query);
  return head + "/" + database + tail;
}

TestDatabase::TestDatabase() {
  static std::atomic<int> counter{0};
  std::random_device random;
  name_ = "mt_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
          std::to_string(random() % 100000);
  const std::string server = ServerDsn();
  pqxx::connection admin(server);
  pqxx::nontransaction tx(admin);
  tx.exec("CREATE DATABASE " + tx.quote_name(name_));
  dsn_ = DsnForDatabase(server, name_);
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection admin(ServerDsn());
    pqxx::nontransaction tx(admin);
    tx.exec_params("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                   name_);
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name_));
  } catch (const std::exception& e) {
    // A destructor must not throw; the server is thrown away after the run anyway.
    std::cerr << "TestDatabase: could not drop " << name_ << ": " << e.what() << '\n';
  }
}

}  // namespace mailtrail::testing
