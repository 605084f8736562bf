// The C ABI's contract: error codes and messages, names, struct versioning, connection failures.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

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
}

TEST(CApi, StructSizeGuardsTheAbi) {
  coamd_client_options o;
  coamd_client_options_defaults(&o);
  EXPECT_EQ(o.struct_size, static_cast<int32_t>(sizeof(o)));
  o.struct_size = 4;
  coamd_client* c = nullptr;
  EXPECT_EQ(coamd_client_create("127.0.0.1:1", &o, nullptr, nullptr, &c), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("struct_size"), std::string::npos);
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
