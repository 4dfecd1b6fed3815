#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <thread>

#include "pg_test_database.hpp"
#include "store/migrator.hpp"

namespace mailtrail::store {
namespace {

namespace fs = std::filesystem;

const fs::path kShippedMigrations = fs::path(MAILTRAIL_SOURCE_DIR) / "migrations";

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "mailtrail-migr.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  void Write(const std::string& name, const std::string& contents) const {
    std::ofstream(path_ / name, std::ios::binary) << contents;
  }

 private:
  fs::path path_;
};

long Count(pqxx::connection& connection, const std::string& sql) {
  pqxx::read_transaction tx(connection);
  return tx.exec(sql)[0][0].as<long>();
}

bool TableExists(pqxx::connection& connection, const std::string& name) {
  pqxx::read_transaction tx(connection);
  return !tx.exec_params("SELECT to_regclass($1)", name)[0][0].is_null();
}

class MigratorTest : public ::testing::Test {
 protected:
  mailtrail::testing::TestDatabase database_;
};

TEST_F(MigratorTest, FreshDatabaseGetsEveryShippedMigration) {
  pqxx::connection connection(database_.dsn());
  const auto files = ReadMigrations(kShippedMigrations);
  const MigrationReport report = Migrate(connection, kShippedMigrations);

  ASSERT_EQ(report.applied.size(), files.size());
  EXPECT_EQ(report.already_applied, 0u);
  for (std::size_t i = 0; i < files.size(); ++i) EXPECT_EQ(report.applied[i], files[i].name);
  EXPECT_EQ(Count(connection, "SELECT count(*) FROM mailtrail.schema_migrations"),
            static_cast<long>(files.size()));
  for (const char* table :
       {"mailtrail.orders", "mailtrail.order_changes", "mailtrail.carrier_tracking_events",
        "mailtrail.webhook_deliveries", "mailtrail.order_timeline", "mailtrail.status_durations",
        "mailtrail.stuck_orders", "mailtrail.daily_status_counts",
        "mailtrail.delivery_performance"}) {
    EXPECT_TRUE(TableExists(connection, table)) << table;
  }
  pqxx::read_transaction tx(connection);
  const auto row =
      tx.exec("SELECT checksum FROM mailtrail.schema_migrations ORDER BY version LIMIT 1")[0];
  EXPECT_EQ(row[0].as<std::string>(), files.front().checksum);
}

TEST_F(MigratorTest, SecondRunAppliesNothing) {
  pqxx::connection connection(database_.dsn());
  Migrate(connection, kShippedMigrations);
  const MigrationReport again = Migrate(connection, kShippedMigrations);
  EXPECT_TRUE(again.applied.empty());
  EXPECT_EQ(again.already_applied, ReadMigrations(kShippedMigrations).size());
}

TEST_F(MigratorTest, ConcurrentRunnersApplyEachFileOnce) {
  // A migration that would fail on a second application proves "once" beyond the version table.
  TempDir dir;
  dir.Write("0001_first.sql",
            "CREATE TABLE public.once_marker (n int); INSERT INTO public.once_marker VALUES (1);");
  dir.Write("0002_slow.sql", "SELECT pg_sleep(0.3); INSERT INTO public.once_marker VALUES (2);");
  dir.Write("0003_third.sql", "CREATE TABLE public.third (n int);");

  constexpr int kRunners = 4;
  std::vector<MigrationReport> reports(kRunners);
  std::vector<std::string> errors(kRunners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRunners; ++i) {
    threads.emplace_back([&, i] {
      try {
        pqxx::connection connection(database_.dsn());
        reports[i] = Migrate(connection, dir.path());
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();

  std::size_t total_applied = 0;
  for (int i = 0; i < kRunners; ++i) {
    EXPECT_EQ(errors[i], "") << "runner " << i;
    total_applied += reports[i].applied.size();
  }
  EXPECT_EQ(total_applied, 3u);
  pqxx::connection connection(database_.dsn());
  EXPECT_EQ(Count(connection, "SELECT count(*) FROM public.once_marker"), 2);
  EXPECT_EQ(Count(connection, "SELECT count(*) FROM mailtrail.schema_migrations"), 3);
}

TEST_F(MigratorTest, ChangedAppliedFileIsRefusedByName) {
  TempDir dir;
  dir.Write("0001_first.sql", "CREATE TABLE public.a (n int);");
  pqxx::connection connection(database_.dsn());
  Migrate(connection, dir.path());

  dir.Write("0001_first.sql", "CREATE TABLE public.a (n bigint);");
  dir.Write("0002_second.sql", "CREATE TABLE public.b (n int);");
  try {
    Migrate(connection, dir.path());
    FAIL() << "a changed applied migration was accepted";
  } catch (const MigrationError& e) {
    EXPECT_NE(std::string(e.what()).find("0001_first.sql"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("changed after it was applied"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(TableExists(connection, "public.b")) << "nothing may be applied after a refusal";
}

TEST_F(MigratorTest, FailingFileRollsBackAndKeepsEarlierOnes) {
  TempDir dir;
  dir.Write("0001_ok.sql", "CREATE TABLE public.ok1 (n int);");
  dir.Write("0002_ok.sql", "CREATE TABLE public.ok2 (n int);");
  dir.Write("0003_broken.sql", "CREATE TABLE public.partial (n int); SELECT no_such_function();");
  dir.Write("0004_after.sql", "CREATE TABLE public.after_broken (n int);");
  pqxx::connection connection(database_.dsn());
  try {
    Migrate(connection, dir.path());
    FAIL() << "a failing migration did not throw";
  } catch (const MigrationError& e) {
    EXPECT_NE(std::string(e.what()).find("0003_broken.sql"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no_such_function"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(TableExists(connection, "public.ok1"));
  EXPECT_TRUE(TableExists(connection, "public.ok2"));
  EXPECT_FALSE(TableExists(connection, "public.partial")) << "the failed file must roll back";
  EXPECT_FALSE(TableExists(connection, "public.after_broken"));
  EXPECT_EQ(AppliedVersions(connection), (std::vector<long>{1, 2}));

  // Fixing the file lets the next run continue where the failed one stopped.
  dir.Write("0003_broken.sql", "CREATE TABLE public.partial (n int);");
  const MigrationReport report = Migrate(connection, dir.path());
  EXPECT_EQ(report.applied, (std::vector<std::string>{"0003_broken.sql", "0004_after.sql"}));
  EXPECT_EQ(report.already_applied, 2u);
}

TEST_F(MigratorTest, VersionUnknownToThisBinaryIsRefused) {
  TempDir newer;
  newer.Write("0001_a.sql", "SELECT 1;");
  newer.Write("0002_b.sql", "SELECT 1;");
  pqxx::connection connection(database_.dsn());
  Migrate(connection, newer.path());

  TempDir older;
  older.Write("0001_a.sql", "SELECT 1;");
  try {
    Migrate(connection, older.path());
    FAIL() << "an older migration set was accepted";
  } catch (const MigrationError& e) {
    EXPECT_NE(std::string(e.what()).find("0002_b.sql"), std::string::npos) << e.what();
  }
}

TEST(ReadMigrationsTest, RejectsBadNamesDuplicatesAndEmptyDirectories) {
  {
    TempDir dir;
    dir.Write("1_short.sql", "SELECT 1;");
    EXPECT_THROW(ReadMigrations(dir.path()), MigrationError);
  }
  {
    TempDir dir;
    dir.Write("0001_a.sql", "SELECT 1;");
    dir.Write("0001_b.sql", "SELECT 2;");
    EXPECT_THROW(ReadMigrations(dir.path()), MigrationError);
  }
  {
    TempDir dir;
    dir.Write("README.md", "not a migration");
    EXPECT_THROW(ReadMigrations(dir.path()), MigrationError);
  }
  EXPECT_THROW(ReadMigrations("/nonexistent/mailtrail/migrations"), MigrationError);
  {
    TempDir dir;
    dir.Write("0002_b.sql", "SELECT 2;");
    dir.Write("0010_c.sql", "SELECT 3;");
    dir.Write("0001_a.sql", "SELECT 1;");
    dir.Write("notes.txt", "ignored: not .sql");
    const auto files = ReadMigrations(dir.path());
    ASSERT_EQ(files.size(), 3u);
    EXPECT_EQ(files[0].name, "0001_a.sql");
    EXPECT_EQ(files[2].version, 10);
    EXPECT_EQ(files[0].checksum, Sha256Hex("SELECT 1;"));
  }
}

TEST(Sha256Test, KnownVector) {
  // printf 'abc' | sha256sum
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace mailtrail::store
