#include "store/database.hpp"

#include <pqxx/pqxx>

namespace mailtrail::store {

Database::Database(std::string url) : url_(std::move(url)) {}

Database::~Database() = default;

pqxx::connection& Database::Get() {
  if (connection_ && !connection_->is_open()) connection_.reset();
  if (!connection_) {
    connection_ = std::make_unique<pqxx::connection>(url_);
    ++connects_;
  }
  return *connection_;
}

void Database::Reset() { connection_.reset(); }

bool Database::connected() const { return connection_ && connection_->is_open(); }

}  // namespace mailtrail::store
