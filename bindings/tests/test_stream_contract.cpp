// The client's Generate-stream handling through the C ABI, against an in-process gRPC server that
// streams real clips (exported from the processed dataset) and breaks the stream contract on
// purpose, chosen by the request text.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coamd/coamd_client.h"
#include "coamd/rig.hpp"
#include "coamd/v1/motion.grpc.pb.h"
#include "real_motions.hpp"

namespace v1 = coamd::v1;
using Clock = std::chrono::steady_clock;

namespace {

class FakeMotionService final : public v1::MotionService::Service {
 public:
  explicit FakeMotionService(std::string token = "") : token_(std::move(token)) {}
  std::atomic<bool> saw_cancel{false};

  grpc::Status GetSkeleton(grpc::ServerContext* ctx, const v1::GetSkeletonRequest*, v1::Skeleton* out) override {
    if (!authorized(ctx)) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing bearer token");
    const auto& clip = coamd_test::real_clips().at(0);
    for (int j = 0; j < 21; ++j) {
      out->add_joint_names(coamd_joint_name(j));
      out->add_parents(coamd_joint_parent(j));
    }
    for (float v : clip.rest) out->add_rest_offsets(v);
    out->set_fps(20.f);
    return grpc::Status::OK;
  }

  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateResponse>* w) override {
    if (!authorized(ctx)) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing bearer token");
    const std::string mode = req->text();
    if (mode == "abort") return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "text: rejected by the test server");
    const auto& clip = coamd_test::real_clips().at(0);
    const int n = std::min(clip.num_frames(), static_cast<int>(std::lround(req->duration_s() * 20.f)));
    const int delay_ms = mode == "slow" ? 300 : 0;
    for (int start = 0; start < n; start += 4) {
      v1::GenerateResponse r;
      for (int i = start; i < std::min(n, start + 4); ++i) {
        int index = i;
        if (mode == "skip" && i >= 1) index = i + 1;  // frame 1 never comes
        v1::Frame* f = r.add_frames();
        f->set_index(index);
        f->set_time_s(index / 20.f);
        for (int k = 0; k < 63; ++k) f->add_positions(clip.frame(i)[k]);
        if (req->include_rotations()) {
          float local[84];
          coamd::solve_rotations(clip.frame(i), clip.rest.data(), local, nullptr);
          for (float q : local) f->add_rotations(q);
        }
      }
      if (delay_ms) {
        for (int t = 0; t < delay_ms / 10; ++t) {
          if (ctx->IsCancelled()) {
            saw_cancel = true;
            return grpc::Status::CANCELLED;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      if (!w->Write(r)) {
        saw_cancel = ctx->IsCancelled();
        return grpc::Status::CANCELLED;
      }
    }
    if (mode == "nosummary") return grpc::Status::OK;
    v1::GenerateResponse last;
    last.mutable_summary()->set_total_frames(mode == "mismatch" ? n + 1 : n);
    last.mutable_summary()->set_fps(20.f);
    last.mutable_summary()->set_seed(req->seed());
    last.mutable_summary()->set_time_to_first_frame_ms(12.5f);
    w->Write(last);
    return grpc::Status::OK;
  }

 private:
  bool authorized(grpc::ServerContext* ctx) const {
    if (token_.empty()) return true;
    auto it = ctx->client_metadata().find("authorization");
    return it != ctx->client_metadata().end() && std::string(it->second.data(), it->second.size()) == "Bearer " + token_;
  }
  std::string token_;
};

struct TestServer {
  explicit TestServer(const std::string& token = "") : service(token) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&service);
    server = b.BuildAndStart();
  }
  ~TestServer() { server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2)); }
  std::string target() const { return "127.0.0.1:" + std::to_string(port); }
  FakeMotionService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

struct Handles {
  coamd_client* client = nullptr;
  coamd_stream* stream = nullptr;
  ~Handles() {
    coamd_stream_destroy(stream);
    coamd_client_destroy(client);
  }
};

void connect(Handles& h, const TestServer& srv, const char* token = nullptr) {
  coamd_client_options o;
  coamd_client_options_defaults(&o);
  ASSERT_EQ(coamd_client_create(srv.target().c_str(), &o, nullptr, token, &h.client), COAMD_OK) << coamd_last_error();
}

void start(Handles& h, const char* mode, float seconds, int coords = COAMD_COORDS_RIGHT_HANDED_Y_UP,
           uint32_t capacity = 0, int server_rotations = 0) {
  coamd_request r;
  coamd_request_defaults(&r);
  r.duration_s = seconds;
  r.coordinates = coords;
  r.capacity_frames = capacity;
  r.server_rotations = server_rotations;
  ASSERT_EQ(coamd_stream_start(h.client, mode, &r, &h.stream), COAMD_OK) << coamd_last_error();
}

std::string error_of(coamd_stream* s) {
  char buf[512];
  coamd_stream_error(s, buf, sizeof(buf));
  return buf;
}

}  // namespace

TEST(StreamContract, OrderedStreamArrivesCompleteAndEqualsTheClip) {
  TestServer srv;
  const auto& clip = coamd_test::real_clips().at(0);
  for (int coords : {COAMD_COORDS_RIGHT_HANDED_Y_UP, COAMD_COORDS_UNITY}) {
    Handles h;
    connect(h, srv);
    start(h, "ordered", 2.0f, coords);
    ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
    coamd_stream_info info;
    info.struct_size = sizeof(info);
    ASSERT_EQ(coamd_stream_info_get(h.stream, &info), COAMD_OK);
    EXPECT_EQ(info.frames_received, 40u);
    EXPECT_EQ(info.total_frames, 40u);
    EXPECT_EQ(info.has_summary, 1);
    EXPECT_FLOAT_EQ(info.server_ttff_ms, 12.5f);
    EXPECT_GT(info.client_ttff_ms, 0.f);
    EXPECT_EQ(error_of(h.stream), "");
    for (uint32_t i = 0; i < 40; ++i) {
      float pos[63];
      ASSERT_EQ(coamd_stream_frame(h.stream, i, pos, nullptr), COAMD_OK);
      for (int k = 0; k < 63; ++k) {
        const float want = (coords == COAMD_COORDS_UNITY && k % 3 == 0) ? -clip.frame(i)[k] : clip.frame(i)[k];
        ASSERT_EQ(pos[k], want) << "frame " << i << " float " << k;
      }
    }
    float pos[63];
    EXPECT_EQ(coamd_stream_frame(h.stream, 40, pos, nullptr), COAMD_ERR_NOT_FOUND);
  }
}

TEST(StreamContract, ServerRotationsAreKeptAndChained) {
  TestServer srv;
  const auto& clip = coamd_test::real_clips().at(0);
  Handles h;
  connect(h, srv);
  start(h, "ordered", 1.0f, COAMD_COORDS_RIGHT_HANDED_Y_UP, 0, 1);
  ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
  ASSERT_EQ(error_of(h.stream), "");
  float local[84], want[84], world[84], want_world[84];
  ASSERT_EQ(coamd_stream_frame(h.stream, 7, nullptr, local), COAMD_OK);
  coamd::solve_rotations(clip.frame(7), clip.rest.data(), want, want_world);
  for (int k = 0; k < 84; ++k) EXPECT_NEAR(local[k], want[k], 1e-6f);
  ASSERT_EQ(coamd_stream_sample_motion_time(h.stream, 7.0 / 20.0, nullptr, nullptr, world), COAMD_OK);
  for (int k = 0; k < 84; ++k) EXPECT_NEAR(world[k], want_world[k], 1e-5f);
}

TEST(StreamContract, BrokenStreamsEndInErrorNamingTheProblem) {
  TestServer srv;
  struct Case {
    const char* mode;
    uint32_t capacity;
    const char* message;
  } cases[] = {
      {"skip", 0, "frame index 2 arrived, expected 1"},
      {"ordered", 8, "more than the buffer's 8 frames"},
      {"nosummary", 0, "without a summary"},
      {"mismatch", 0, "the summary says 41 frames but 40 arrived"},
      {"abort", 0, "INVALID_ARGUMENT: text: rejected by the test server"},
  };
  for (const Case& c : cases) {
    Handles h;
    connect(h, srv);
    start(h, c.mode, 2.0f, COAMD_COORDS_RIGHT_HANDED_Y_UP, c.capacity);
    ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK) << c.mode;
    coamd_sample_info info;
    coamd_stream_sample(h.stream, 1.0, &info, nullptr, nullptr, nullptr);
    EXPECT_EQ(info.state, COAMD_STATE_ERROR) << c.mode;
    EXPECT_NE(error_of(h.stream).find(c.message), std::string::npos) << c.mode << ": " << error_of(h.stream);
  }
}

TEST(StreamContract, EnginePlaysWhileFramesArriveAndRebuffersWithoutJumps) {
  // The server sends 0.2 s of motion every 0.3 s (slower than real time), so playback must run dry,
  // hold, and resume from the same motion time; the engine loop runs at about 200 Hz.
  TestServer srv;
  Handles h;
  connect(h, srv);
  coamd_request r;
  coamd_request_defaults(&r);
  r.duration_s = 1.2f;  // 24 frames
  r.buffering_delay_s = 0.2f;
  ASSERT_EQ(coamd_stream_start(h.client, "slow", &r, &h.stream), COAMD_OK);
  const auto t0 = Clock::now();
  std::vector<int> states;
  double last_m = 0.0, last_t = 0.0;
  coamd_sample_info info{};
  while (std::chrono::duration<double>(Clock::now() - t0).count() < 10.0) {
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    float pos[63];
    ASSERT_EQ(coamd_stream_sample(h.stream, t, &info, pos, nullptr, nullptr), COAMD_OK);
    if (states.empty() || states.back() != info.state) states.push_back(info.state);
    ASSERT_GE(info.motion_time_s + 1e-6, last_m) << "motion time never goes back";
    ASSERT_LE(info.motion_time_s - last_m, (t - last_t) + 1e-3) << "motion time never jumps ahead";
    last_m = info.motion_time_s;
    last_t = t;
    if (info.state == COAMD_STATE_FINISHED || info.state == COAMD_STATE_ERROR) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(info.state, COAMD_STATE_FINISHED) << error_of(h.stream);
  EXPECT_GE(info.rebuffer_count, 1);
  EXPECT_EQ(states.front(), COAMD_STATE_BUFFERING);
  EXPECT_GE(std::count(states.begin(), states.end(), COAMD_STATE_PLAYING), 2) << "played, ran dry, played again";
  EXPECT_NEAR(info.motion_time_s, 23.0 / 20.0, 1e-5);
}

TEST(StreamContract, CancelStopsTheServerSideStreamPromptly) {
  TestServer srv;
  Handles h;
  connect(h, srv);
  start(h, "slow", 12.f);
  coamd_sample_info info{};
  const auto t0 = Clock::now();
  while (info.frames_available < 4 && Clock::now() - t0 < std::chrono::seconds(5)) {
    coamd_stream_sample(h.stream, 0.0, &info, nullptr, nullptr, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(info.frames_available, 4u);
  const auto t1 = Clock::now();
  ASSERT_EQ(coamd_stream_cancel(h.stream), COAMD_OK);
  coamd_stream_sample(h.stream, 0.5, &info, nullptr, nullptr, nullptr);
  EXPECT_EQ(info.state, COAMD_STATE_CANCELLED);
  ASSERT_EQ(coamd_stream_wait(h.stream, 5.f), COAMD_OK);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t1).count(), 2.0);
  for (int i = 0; i < 100 && !srv.service.saw_cancel; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(srv.service.saw_cancel.load()) << "the server saw the cancellation";
}

TEST(StreamContract, BearerTokenIsSentAsMetadata) {
  TestServer srv("tok-123");
  coamd_client_options o;
  coamd_client_options_defaults(&o);
  coamd_client* c = nullptr;
  EXPECT_EQ(coamd_client_create(srv.target().c_str(), &o, nullptr, nullptr, &c), COAMD_ERR_RPC);
  EXPECT_NE(std::string(coamd_last_error()).find("UNAUTHENTICATED"), std::string::npos) << coamd_last_error();
  Handles h;
  connect(h, srv, "tok-123");
  start(h, "ordered", 0.4f);
  ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
  EXPECT_EQ(error_of(h.stream), "");
}
