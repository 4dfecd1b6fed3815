// Webhook test vectors shared by the server, group commit and throughput tests, computed by
// make_vectors.py (python3's hmac); verify_test.cpp holds the full table of edge cases.
#pragma once

#include <chrono>
#include <string_view>

#include "domain/timestamp.hpp"

namespace mailtrail::webhook::vectors {

inline constexpr std::string_view kSecret = "whsec_test_secret_0123456789";
/// The verifier's "now" for every vector (2023-11-14T22:13:20Z).
inline const domain::Timestamp kNow{std::chrono::seconds(1700000000)};
/// A JSON-format letter.updated event for letter_abc.
inline constexpr std::string_view kBody =
    R"({"id":"event_123","object":"event","type":"letter.updated","live":false,"createdAt":"2023-11-14T22:13:00.000Z","data":{"id":"letter_abc","object":"letter","status":"ready"},"updatedFields":{"status":"ready"}})";
inline constexpr std::string_view kBodySha256 =
    "bc28bab288e8614d4c382481bf17b3d5d64cb551779b336f7100291121d97b73";
/// kBody signed with kSecret at t = kNow.
inline constexpr std::string_view kGoodSignature =
    "t=1700000000,v1=5eb5e680baa0ec7832948b0948c1c8c3edcc7a5cee2658ef1443ef4b1906bd7a";
inline constexpr std::string_view kWrongSecretSignature =
    "t=1700000000,v1=14c83bb16fdb5207188a646fedda414ccd2dc2e82f5d1c636b6c27e0f1258ef9";
/// postcard.updated for postcard_xyz, iat 1699999990, HS256 with kSecret.
inline constexpr std::string_view kJwtOk =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoicG9zdGNhcmQudXBkYXRlZCIsImRhdGEiOnsiaWQiOiJwb3N0Y2FyZF94eXoiLCJzdGF0dXMiOiJwcm9jZX"
    "NzZWRfZm9yX2RlbGl2ZXJ5In0sImlhdCI6MTY5OTk5OTk5MH0.c0QHunjSfTnHj9AcO3o5h84E0iwgdPJXdko7zPh592k";
/// tracker.visited (not an order event), no iat.
inline constexpr std::string_view kJwtTracker =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoidHJhY2tlci52aXNpdGVkIiwiZGF0YSI6eyJpZCI6InRyYWNrZXJfMSJ9fQ."
    "F0-xEKz1cbtEGjvkpU9d4MURNuR5HNHMyNVHuFF_V0w";

}  // namespace mailtrail::webhook::vectors
