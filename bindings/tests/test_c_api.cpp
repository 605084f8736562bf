// The C ABI's contract: error codes and messages, names, struct versioning, connection failures.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "coamd/coamd_client.h"
#include "real_motions.hpp"

TEST(CApi, NamesAndParents) {
  EXPECT_EQ(coamd_abi_version(), COAMD_ABI_VERSION);
  EXPECT_STREQ(coamd_joint_name(0), "Hips");
  EXPECT_STREQ(coamd_joint_name(20), "Toes_R");
  EXPECT_EQ(coamd_joint_name(21), nullptr);
  EXPECT_EQ(coamd_joint_parent(0), -1);
  EXPECT_EQ(coamd_joint_parent(7), 6);
  EXPECT_EQ(coamd_joint_parent(-1), -2);
  EXPECT_STREQ(coamd_unity_humanoid_bone(6), "LeftUpperArm");
  EXPECT_STREQ(coamd_unity_humanoid_bone(19), "RightFoot");
  EXPECT_STREQ(coamd_unreal_bone(0), "pelvis");
  for (int j = 0; j < COAMD_NUM_JOINTS; ++j) {
    // Side suffixes agree between our names and the engine names.
    const std::string ours = coamd_joint_name(j), unity = coamd_unity_humanoid_bone(j);
    const bool left = ours.size() > 2 && ours.substr(ours.size() - 2) == "_L";
    EXPECT_EQ(left, unity.rfind("Left", 0) == 0) << ours << " vs " << unity;
  }
}

TEST(CApi, NullArgumentsAreRejectedWithAMessage) {
  coamd_client* c = reinterpret_cast<coamd_client*>(0x1);
  EXPECT_EQ(coamd_client_create(nullptr, nullptr, nullptr, nullptr, &c), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(c, nullptr) << "the out handle is cleared on failure";
  EXPECT_NE(std::string(coamd_last_error()).find("target"), std::string::npos) << coamd_last_error();
  EXPECT_EQ(coamd_stream_sample(nullptr, 0.0, nullptr, nullptr, nullptr, nullptr), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("stream"), std::string::npos);
  coamd_stream* s = nullptr;
  coamd_request r;
  coamd_request_defaults(&r);
  EXPECT_EQ(coamd_stream_start(nullptr, "walk", &r, &s), COAMD_ERR_INVALID_ARGUMENT);
  float buf[3] = {0, 0, 0};
  EXPECT_EQ(coamd_convert_positions(buf, 1, 0, 7, buf), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("coords"), std::string::npos);
  int32_t pairs = -1;
  uint32_t counts[4] = {0, 0, 0, 0};
  EXPECT_EQ(coamd_client_pair_clips(nullptr, counts, 4, &pairs), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("client"), std::string::npos);
  EXPECT_EQ(pairs, -1) << "nothing written on a rejected call";
}

TEST(CApi, StructSizeGuardsTheAbi) {
  coamd_client_options o;
  coamd_client_options_defaults(&o);
  EXPECT_EQ(o.struct_size, static_cast<int32_t>(sizeof(o)));
  coamd_client* c = nullptr;
  for (int32_t bad : {4, 15, 17, 1000}) {
    o.struct_size = bad;
    EXPECT_EQ(coamd_client_create("127.0.0.1:1", &o, nullptr, nullptr, &c), COAMD_ERR_INVALID_ARGUMENT) << bad;
    const std::string err = coamd_last_error();
    EXPECT_NE(err.find("coamd_client_options.struct_size is " + std::to_string(bad)), std::string::npos) << err;
    EXPECT_NE(err.find("accepts 16 to 16"), std::string::npos) << err;
    EXPECT_EQ(err.find("newer") != std::string::npos, bad > 16) << err;
  }
}

TEST(CApi, VersionStringsNameTheLibraryAndItsDependencies) {
  EXPECT_EQ(coamd_abi_version(), 5);
  EXPECT_STREQ(coamd_version(), COAMD_VERSION_STRING);
  const std::string v = coamd_version();
  EXPECT_EQ(v, std::to_string(COAMD_VERSION_MAJOR) + "." + std::to_string(COAMD_VERSION_MINOR) + "." +
                   std::to_string(COAMD_VERSION_PATCH));
  const std::string info = coamd_build_info();
  EXPECT_EQ(info.rfind("coamd_client " + v + " (ABI 5; gRPC 1.", 0), 0u) << info;
  EXPECT_NE(info.find("; protobuf 3."), std::string::npos) << info;
}

TEST(CApi, RequestDefaultsNeverWritePastAVersion1Struct) {
  // A version-1 caller's coamd_request is 64 bytes; the exported defaults function (which the
  // header's macro replaces for callers built against this version) fills exactly those.
  unsigned char mem[sizeof(coamd_request) + 16];
  std::memset(mem, 0xAB, sizeof(mem));
  auto* r = reinterpret_cast<coamd_request*>(mem);
  (coamd_request_defaults)(r);  // the function, not the macro
  EXPECT_EQ(r->struct_size, 64);
  EXPECT_FLOAT_EQ(r->duration_s, 4.f);
  EXPECT_FLOAT_EQ(r->buffering_delay_s, 0.2f);
  EXPECT_EQ(r->cleanup, 0) << "version 1's tail padding is zeroed like the rest";
  for (size_t k = 64; k < sizeof(mem); ++k) ASSERT_EQ(mem[k], 0xAB) << "byte " << k << " was written";
  // coamd_request_init writes exactly the size asked for.
  std::memset(mem, 0xAB, sizeof(mem));
  ASSERT_EQ(coamd_request_init(r, sizeof(coamd_request)), COAMD_OK);
  EXPECT_EQ(r->struct_size, static_cast<int32_t>(sizeof(coamd_request)));
  EXPECT_EQ(r->temperature, 0.f);
  for (size_t k = sizeof(coamd_request); k < sizeof(mem); ++k) ASSERT_EQ(mem[k], 0xAB) << "byte " << k;
  EXPECT_EQ(coamd_request_init(r, 60), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(coamd_request_init(r, 96), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("newer"), std::string::npos);
  // The header's macro: code compiled against this version gets the full struct.
  coamd_request full;
  std::memset(&full, 0x5A, sizeof(full));
  coamd_request_defaults(&full);
  EXPECT_EQ(full.struct_size, static_cast<int32_t>(sizeof(full)));
  EXPECT_EQ(full.temperature, 0.f);
  EXPECT_EQ(full.cleanup, COAMD_CLEANUP_SERVER_DEFAULT);
}

namespace {
// Sets the calling thread's last error to a long message holding multi-byte UTF-8 characters:
// a connection to a Unix socket that does not exist fails at once and names its target.
std::string long_utf8_error() {
  std::string target = "unix:/nonexistent/";
  for (int i = 0; i < 200; ++i) target += "d\xc3\xa9j\xc3\xa0 \xe2\x82\xac ";  // "deja euro" with accents
  target += "/socket";
  coamd_client_options o;
  coamd_client_options_defaults(&o);
  o.connect_timeout_s = 2.f;
  coamd_client* c = nullptr;
  const int rc = coamd_client_create(target.c_str(), &o, nullptr, nullptr, &c);
  EXPECT_NE(rc, COAMD_OK);
  coamd_client_destroy(c);
  return coamd_last_error();
}
}  // namespace

TEST(CApi, LastErrorCopiesInFullOrSaysHowLongItIs) {
  const std::string full = long_utf8_error();
  ASSERT_GT(full.size(), 2000u) << full;
  ASSERT_NE(full.find("\xe2\x82\xac"), std::string::npos) << "the message keeps the UTF-8 target";
  int32_t len = -1;
  EXPECT_EQ(coamd_last_error_copy(nullptr, 0, &len), COAMD_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(len, static_cast<int32_t>(full.size()));
  std::vector<char> buf(static_cast<size_t>(len) + 1, '#');
  ASSERT_EQ(coamd_last_error_copy(buf.data(), len + 1, &len), COAMD_OK);
  EXPECT_EQ(std::string(buf.data()), full);
  // Too short: a NUL-terminated prefix, and the last error itself is untouched.
  char small[8];
  EXPECT_EQ(coamd_last_error_copy(small, sizeof(small), &len), COAMD_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(std::string(small), full.substr(0, 7));
  EXPECT_EQ(std::string(coamd_last_error()), full);
  EXPECT_EQ(coamd_last_error_copy(nullptr, 4, &len), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(coamd_last_error()), full);
}

TEST(CApi, TruncatedCopiesEndOnACharacterBoundary) {
  const std::string text = long_utf8_error();
  const size_t first = text.find("\xc3\xa9");
  ASSERT_NE(first, std::string::npos);
  int cut_inside = 0;
  for (int32_t n = 1; n <= static_cast<int32_t>(first) + 40; ++n) {
    std::vector<char> buf(static_cast<size_t>(n));
    int32_t len = 0;
    ASSERT_EQ(coamd_last_error_copy(buf.data(), n, &len), COAMD_ERR_BUFFER_TOO_SMALL);
    const std::string got(buf.data());
    ASSERT_EQ(text.compare(0, got.size(), got), 0) << "a prefix, n = " << n;
    ASSERT_LE(got.size(), static_cast<size_t>(n - 1));
    // The next byte of the text starts a character: nothing was cut in half.
    const unsigned char next = static_cast<unsigned char>(text[got.size()]);
    ASSERT_NE(next & 0xC0u, 0x80u) << "cut inside a character at n = " << n;
    if (got.size() < static_cast<size_t>(n - 1)) ++cut_inside;
  }
  EXPECT_GT(cut_inside, 10) << "buffer ends inside characters were met";
}

TEST(CApi, ReferencePoseAgreesAcrossCoordinateSystems) {
  const auto& clip = coamd_test::real_clips().at(0);
  float local[3][84], pos[3][63], rest[3][63];
  for (int c = 0; c < 3; ++c) {
    ASSERT_EQ(coamd_convert_positions(clip.rest.data(), 21, COAMD_COORDS_RIGHT_HANDED_Y_UP, c, rest[c]), COAMD_OK);
    ASSERT_EQ(coamd_reference_pose(rest[c], 63, c, local[c], 84, pos[c], 63), COAMD_OK) << coamd_last_error();
    float fk[63];
    ASSERT_EQ(coamd_forward_kinematics(pos[c], local[c], rest[c], fk), COAMD_OK);
    for (int k = 0; k < 63; ++k) EXPECT_NEAR(fk[k], pos[c][k], c == COAMD_COORDS_UNREAL ? 2e-3f : 2e-5f) << c << " " << k;
  }
  float conv[84];
  ASSERT_EQ(coamd_convert_positions(pos[0], 21, 0, COAMD_COORDS_UNITY, conv), COAMD_OK);
  for (int k = 0; k < 63; ++k) EXPECT_NEAR(conv[k], pos[1][k], 1e-5f);
  ASSERT_EQ(coamd_convert_positions(pos[0], 21, 0, COAMD_COORDS_UNREAL, conv), COAMD_OK);
  for (int k = 0; k < 63; ++k) EXPECT_NEAR(conv[k], pos[2][k], 2e-3f);
  ASSERT_EQ(coamd_convert_rotations(local[0], 21, 0, COAMD_COORDS_UNITY, conv), COAMD_OK);
  for (int k = 0; k < 84; ++k) EXPECT_NEAR(conv[k], local[1][k], 1e-5f);
  // Unreal: Z up, the hips above the origin, toes forward (+X).
  EXPECT_GT(pos[2][2], 80.f);
  EXPECT_GT(pos[2][3 * 16], pos[2][3 * 15]);
  // Short arrays are refused, not overrun.
  EXPECT_EQ(coamd_reference_pose(rest[0], 63, 0, local[0], 83, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("reference_local_rotations has room for 83 floats; it needs 84"),
            std::string::npos)
      << coamd_last_error();
  EXPECT_EQ(coamd_reference_pose(rest[0], 62, 0, nullptr, 0, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(coamd_reference_pose(rest[0], 63, 0, nullptr, 0, nullptr, 0), COAMD_OK) << "all outputs optional";
}

TEST(CApi, FrameInfoInitAndLogLevelChecks) {
  unsigned char mem[sizeof(coamd_frame_info) + 8];
  std::memset(mem, 0xCD, sizeof(mem));
  auto* fi = reinterpret_cast<coamd_frame_info*>(mem);
  coamd_frame_info_init(fi, sizeof(coamd_frame_info));
  EXPECT_EQ(fi->struct_size, static_cast<int32_t>(sizeof(coamd_frame_info)));
  EXPECT_EQ(fi->frame, 0);
  for (size_t k = sizeof(coamd_frame_info); k < sizeof(mem); ++k) ASSERT_EQ(mem[k], 0xCD);
  EXPECT_EQ(coamd_set_log_callback(nullptr, 5, nullptr), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(coamd_set_log_callback(nullptr, -1, nullptr), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(coamd_set_log_callback(nullptr, COAMD_LOG_ERROR, nullptr), COAMD_OK);
}

TEST(CApi, UnreachableServerFailsWithinTheTimeout) {
  // A loopback port that nothing listens on (bound, then closed).
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  coamd_client_options o;
  coamd_client_options_defaults(&o);
  o.connect_timeout_s = 0.5f;
  coamd_client* c = nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = coamd_client_create(("127.0.0.1:" + std::to_string(port)).c_str(), &o, nullptr, nullptr, &c);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(rc, COAMD_ERR_CONNECT) << coamd_last_error();
  EXPECT_EQ(c, nullptr);
  EXPECT_LT(s, 3.0) << "connect must give up near connect_timeout_s";
  EXPECT_NE(std::string(coamd_last_error()).find("GetSkeleton"), std::string::npos) << coamd_last_error();
}

TEST(CApi, SolveAndForwardKinematicsRoundTripOnARealFrame) {
  const auto& clip = coamd_test::real_clips().at(2);
  const float* p = clip.frame(clip.num_frames() / 2);
  float local[84], world[84], fk[63];
  ASSERT_EQ(coamd_solve_rotations(p, clip.rest.data(), local, world), COAMD_OK);
  ASSERT_EQ(coamd_forward_kinematics(p, local, clip.rest.data(), fk), COAMD_OK);
  for (int k = 0; k < 63; ++k) EXPECT_NEAR(fk[k], p[k], 0.02f) << k;
  EXPECT_EQ(coamd_solve_rotations(nullptr, clip.rest.data(), local, world), COAMD_ERR_INVALID_ARGUMENT);
}
