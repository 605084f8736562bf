// The client's Generate-stream handling through the C ABI, against an in-process gRPC server that
// streams real clips (exported from the processed dataset) and breaks the stream contract on
// purpose, chosen by the request text.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "abi/old_caller.h"
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

  v1::GenerateRequest last_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }
  // A failure message of 3,000+ bytes with multi-byte UTF-8 characters ("longerror" mode).
  static std::string long_message() {
    std::string m = "text: rejected by the test server";
    while (m.size() < 3000) m += " d\xc3\xa9j\xc3\xa0 vu \xe2\x82\xac";
    return m + " (end)";
  }

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
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_ = *req;
    }
    const std::string mode = req->text();
    if (mode == "abort") return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "text: rejected by the test server");
    if (mode == "longerror") return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, long_message());
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
        f->add_root_velocity(0.1f * i);  // root motion: a known ramp per frame
        f->add_root_velocity(0.f);
        f->add_root_velocity(1.f);
        f->set_heading(0.01f * i);
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
    last.mutable_summary()->set_cleanup_applied(req->cleanup() != v1::CLEANUP_OFF);
    last.mutable_summary()->set_temperature(req->temperature() > 0.f ? req->temperature() : 1.f);
    last.mutable_summary()->set_iterations(req->iterations() ? req->iterations() : 8);
    last.mutable_summary()->set_ode_steps(req->ode_steps() ? req->ode_steps() : 6);
    last.mutable_summary()->set_cfg_scale(3.f);
    last.mutable_summary()->set_guidance_scale(1.f);
    last.mutable_summary()->set_max_batch(1);
    last.mutable_summary()->set_skeleton_applied(req->skeleton() != v1::SKELETON_MODE_RAW);
    last.mutable_summary()->set_root_motion(req->root_motion() == v1::ROOT_MOTION_IN_PLACE ? "in_place" : "world");
    *last.mutable_summary()->mutable_interpretation() = interpretation(mode);
    w->Write(last);
    return grpc::Status::OK;
  }

  // Canned understanding of a text; "oov" is flagged with a note longer than the C struct's field.
  static v1::Interpretation interpretation(const std::string& text) {
    v1::Interpretation it;
    const char* content[] = {"walk", "run", "jog", "wave-left-hand", "wave-right-hand", "bow", "kick", "jump", "sit", "squat"};
    for (int k = 0; k < 10; ++k) {
      auto* l = it.add_content();
      l->set_label(content[k]);
      l->set_score(0.5f / (k + 1));
    }
    auto* st = it.add_style();
    st->set_label("none");
    st->set_score(0.75f);
    it.set_side(text == "oov" ? "" : "left");
    it.set_out_of_vocabulary(text == "oov");
    it.set_out_of_vocabulary_score(text == "oov" ? 0.9f : 0.05f);
    if (text == "oov") {
      std::string note = "not in the vocabulary:";
      while (note.size() < 700) note += " d\xc3\xa9j\xc3\xa0";
      it.set_note(note);
    }
    it.set_conditioned_text("a person walks. " + text);
    return it;
  }

  grpc::Status GetCapabilities(grpc::ServerContext*, const v1::GetCapabilitiesRequest*, v1::Capabilities* out) override {
    capabilities_calls++;
    const char* actions[] = {"walk", "wave-left-hand", "kick"};
    const char* sides[] = {"", "left", "right"};
    for (int k = 0; k < 3; ++k) {
      auto* a = out->add_actions();
      a->set_label(actions[k]);
      a->set_description(std::string("a person does ") + actions[k] + (k == 2 ? std::string(400, 'x') : ""));
      a->set_training_clips(100u * (k + 1));
      a->set_side(sides[k]);
    }
    auto* s = out->add_styles();
    s->set_label("elderly");
    s->set_description("an old person");
    s->set_training_clips(42);
    out->set_min_duration_s(0.4f);
    out->set_max_duration_s(12.f);
    out->set_fps(20.f);
    out->set_max_text_chars(512);
    out->set_rare_below_clips(50);
    return grpc::Status::OK;
  }
  std::atomic<int> capabilities_calls{0};

  // Sessions: frames of the clip in a loop, 4 every 20 ms; instructions are acknowledged with an
  // INSTRUCTION event at the next frame; "refuse" as the opening text is an INVALID_ARGUMENT.
  grpc::Status Session(grpc::ServerContext* ctx,
                       grpc::ServerReaderWriter<v1::SessionResponse, v1::SessionRequest>* rw) override {
    v1::SessionRequest first;
    if (!rw->Read(&first) || !first.has_open()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "open first");
    if (first.open().text() == "refuse") return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "text: refused");
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_open_ = first.open();
    }
    std::mutex qmu;
    std::deque<std::string> texts;
    std::atomic<bool> closing{false};
    std::thread reader([&] {
      v1::SessionRequest r;
      while (rw->Read(&r)) {
        if (r.has_close()) break;
        if (r.has_instruction()) {
          std::lock_guard<std::mutex> lock(qmu);
          texts.push_back(r.instruction().text());
        }
      }
      closing = true;
    });
    const auto& clip = coamd_test::real_clips().at(0);
    uint32_t n = 0, next_instruction = 1;
    v1::SessionResponse hello;
    auto* opened = hello.add_events();
    opened->set_kind(v1::SessionEvent::OPENED);
    auto* zero = hello.add_events();
    zero->set_kind(v1::SessionEvent::INSTRUCTION);
    zero->set_instruction(0);
    zero->set_text(first.open().text());
    *zero->mutable_interpretation() = interpretation(first.open().text());
    bool ok = rw->Write(hello);
    while (ok && !ctx->IsCancelled()) {
      const bool last = closing.load();
      v1::SessionResponse r;
      {
        std::lock_guard<std::mutex> lock(qmu);
        while (!texts.empty()) {
          auto* e = r.add_events();
          e->set_kind(v1::SessionEvent::INSTRUCTION);
          e->set_instruction(next_instruction++);
          e->set_text(texts.front());
          e->set_first_frame(n);
          e->set_latency_ms(12.f);
          *e->mutable_interpretation() = interpretation(texts.front());
          texts.pop_front();
        }
      }
      for (int k = 0; k < 4; ++k, ++n) {
        v1::Frame* f = r.add_frames();
        f->set_index(n);
        const float* p = clip.frame(static_cast<int>(n % clip.num_frames()));
        for (int c = 0; c < 63; ++c) f->add_positions(p[c]);
        f->add_root_velocity(0.f);
        f->add_root_velocity(0.f);
        f->add_root_velocity(1.f);
      }
      if (last) {
        auto* e = r.add_events();
        e->set_kind(v1::SessionEvent::CLOSED);
        e->set_first_frame(n);
      }
      ok = rw->Write(r);
      if (last) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!closing) ctx->TryCancel();
    reader.join();
    return ok ? grpc::Status::OK : grpc::Status::CANCELLED;
  }

  v1::SessionOpen last_open() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_open_;
  }

 private:
  bool authorized(grpc::ServerContext* ctx) const {
    if (token_.empty()) return true;
    auto it = ctx->client_metadata().find("authorization");
    return it != ctx->client_metadata().end() && std::string(it->second.data(), it->second.size()) == "Bearer " + token_;
  }
  std::string token_;
  std::mutex mu_;
  v1::GenerateRequest last_;
  v1::SessionOpen last_open_;
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

// ------------------------------------------------------------------------------------ version 3

TEST(StreamContract, ReadersKeepIndependentPlayheadsOnTheirOwnThreads) {
  // Two consumers (say the game thread and an animation worker) read one stream at their own
  // clocks; neither disturbs the other or the stream's built-in playhead.
  TestServer srv;
  const auto& clip = coamd_test::real_clips().at(0);
  Handles h;
  connect(h, srv);
  start(h, "ordered", 2.0f);
  coamd_reader* a = nullptr;
  coamd_reader* b = nullptr;
  ASSERT_EQ(coamd_reader_create(h.stream, "Hero", -1.f, &a), COAMD_OK) << coamd_last_error();
  ASSERT_EQ(coamd_reader_create(h.stream, nullptr, 0.f, &b), COAMD_OK);
  EXPECT_STREQ(coamd_reader_subject_name(a), "Hero");
  EXPECT_STREQ(coamd_reader_subject_name(b), "CoAMD");
  ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);

  // Each thread plays the whole motion at its own rate; every sample equals the clip at that
  // reader's motion time (frames at k / 20 s exactly), and motion time never goes back.
  auto play = [&](coamd_reader* r, double t0, double dt, std::vector<double>* times, std::string* problem) {
    coamd_frame_info info;
    coamd_frame_info_init(&info, sizeof(info));
    float pos[63];
    double last = -1.0;
    for (int tick = 0; tick < 400; ++tick) {
      const double t = t0 + tick * dt;
      if (coamd_reader_sample(r, t, &info, pos, 63, nullptr, 0, nullptr, 0) != COAMD_OK) {
        *problem = coamd_last_error();
        return;
      }
      if (info.motion_time_s + 1e-9 < last) *problem = "motion time went back";
      if (info.engine_time_s != t) *problem = "engine time not echoed";
      last = info.motion_time_s;
      times->push_back(info.motion_time_s);
      if (info.alpha == 0.f && info.frame >= 0 && std::memcmp(pos, clip.frame(info.frame), sizeof(pos)) != 0) {
        *problem = "frame " + std::to_string(info.frame) + " differs from the clip";
      }
      if (info.state == COAMD_STATE_FINISHED) break;
    }
  };
  std::vector<double> ta, tb;
  std::string pa, pb;
  std::thread ta_thread(play, a, 500.0, 1.0 / 60.0, &ta, &pa);
  std::thread tb_thread(play, b, 7.0, 1.0 / 200.0, &tb, &pb);
  ta_thread.join();
  tb_thread.join();
  EXPECT_EQ(pa, "");
  EXPECT_EQ(pb, "");
  ASSERT_GT(ta.size(), 100u);
  ASSERT_GT(tb.size(), 300u);
  EXPECT_NEAR(ta.back(), 39.0 / 20.0, 1e-6);
  EXPECT_NEAR(tb.back(), 39.0 / 20.0, 1e-6);
  EXPECT_NEAR(ta[60], 1.0, 1e-5) << "60 ticks at 60 Hz = 1 s of motion";
  EXPECT_NEAR(tb[200], 1.0, 1e-5) << "200 ticks at 200 Hz = 1 s of motion";
  // The stream's own playhead is untouched: it still buffers from motion time 0.
  coamd_sample_info si;
  ASSERT_EQ(coamd_stream_sample(h.stream, 0.0, &si, nullptr, nullptr, nullptr), COAMD_OK);
  EXPECT_NEAR(si.motion_time_s, 0.f, 1e-6);
  // Restarting one reader replays it alone.
  ASSERT_EQ(coamd_reader_restart(a), COAMD_OK);
  coamd_frame_info fa, fb;
  coamd_frame_info_init(&fa, sizeof(fa));
  coamd_frame_info_init(&fb, sizeof(fb));
  coamd_reader_sample(a, 900.0, &fa, nullptr, 0, nullptr, 0, nullptr, 0);
  coamd_reader_sample(b, 900.0, &fb, nullptr, 0, nullptr, 0, nullptr, 0);
  EXPECT_EQ(fa.frame, 0);
  EXPECT_EQ(fb.frame, 39);
  EXPECT_EQ(fa.num_joints, 21);
  EXPECT_FLOAT_EQ(fa.fps, 20.f);
  EXPECT_EQ(fa.coords, COAMD_COORDS_RIGHT_HANDED_Y_UP);
  coamd_reader_destroy(a);
  coamd_reader_destroy(b);
}

TEST(StreamContract, AReaderOutlivesItsStreamHandle) {
  TestServer srv;
  const auto& clip = coamd_test::real_clips().at(0);
  coamd_reader* done = nullptr;
  coamd_reader* running = nullptr;
  {
    Handles h;
    connect(h, srv);
    start(h, "ordered", 1.0f, COAMD_COORDS_UNITY);
    ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
    ASSERT_EQ(coamd_reader_create(h.stream, "after", 0.f, &done), COAMD_OK);
    coamd_stream_destroy(h.stream);  // the finished stream's frames stay with its reader
    h.stream = nullptr;
    start(h, "slow", 12.f);
    ASSERT_EQ(coamd_reader_create(h.stream, "cancelled", 0.f, &running), COAMD_OK);
  }  // the client and the running stream's handle are destroyed: that stream is cancelled
  coamd_frame_info info;
  coamd_frame_info_init(&info, sizeof(info));
  float pos[63], local[84], world[84];
  ASSERT_EQ(coamd_reader_sample(done, 0.0, &info, pos, 63, local, 84, world, 84), COAMD_OK);
  ASSERT_EQ(coamd_reader_sample(done, 0.5, &info, pos, 63, local, 84, world, 84), COAMD_OK);
  EXPECT_EQ(info.state, COAMD_STATE_PLAYING);
  EXPECT_EQ(info.frame, 10);
  EXPECT_EQ(info.coords, COAMD_COORDS_UNITY);
  EXPECT_FLOAT_EQ(pos[3], -clip.frame(10)[3]) << "Unity frame: x negated";
  EXPECT_EQ(info.total_frames, 20u);
  ASSERT_EQ(coamd_reader_sample(running, 1.0, &info, nullptr, 0, nullptr, 0, nullptr, 0), COAMD_OK);
  EXPECT_EQ(info.state, COAMD_STATE_CANCELLED);
  coamd_reader_destroy(done);
  coamd_reader_destroy(running);
}

TEST(StreamContract, SizedOutputsAreCheckedBeforeWriting) {
  TestServer srv;
  Handles h;
  connect(h, srv);
  start(h, "ordered", 1.0f);
  ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
  coamd_reader* r = nullptr;
  ASSERT_EQ(coamd_reader_create(h.stream, "x", 0.f, &r), COAMD_OK);
  float buf[100];
  std::fill(buf, buf + 100, 7.f);
  coamd_frame_info info;
  coamd_frame_info_init(&info, sizeof(info));
  EXPECT_EQ(coamd_reader_sample(r, 0.0, &info, buf, 62, nullptr, 0, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("positions has room for 62 floats; it needs 63"), std::string::npos);
  EXPECT_EQ(coamd_reader_sample(r, 0.0, &info, nullptr, 0, buf, 80, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(coamd_reader_sample(r, 0.0, &info, nullptr, 0, nullptr, 0, buf, 83), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(coamd_stream_frame_copy(h.stream, 3, buf, 10, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(coamd_stream_sample_at(h.stream, 0.1, &info, nullptr, 0, buf, 50, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
  for (float v : buf) ASSERT_EQ(v, 7.f) << "nothing was written";
  info.struct_size = 12;
  EXPECT_EQ(coamd_reader_sample(r, 0.0, &info, nullptr, 0, nullptr, 0, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("coamd_frame_info.struct_size is 12"), std::string::npos);
  // Longer arrays are fine; only the pose is written.
  ASSERT_EQ(coamd_stream_frame_copy(h.stream, 3, buf, 100, nullptr, 0), COAMD_OK);
  EXPECT_EQ(buf[63], 7.f);
  float want[63];
  ASSERT_EQ(coamd_stream_frame(h.stream, 3, want, nullptr), COAMD_OK);
  for (int k = 0; k < 63; ++k) EXPECT_EQ(buf[k], want[k]);
  // sample_at between frames 3 and 4 and its info.
  coamd_frame_info_init(&info, sizeof(info));
  ASSERT_EQ(coamd_stream_sample_at(h.stream, 3.5 / 20.0, &info, buf, 63, nullptr, 0, nullptr, 0), COAMD_OK);
  EXPECT_EQ(info.frame, 3);
  EXPECT_NEAR(info.alpha, 0.5f, 1e-4f);
  EXPECT_EQ(info.state, COAMD_STATE_FINISHED);
  EXPECT_EQ(info.total_frames, 20u);
  EXPECT_EQ(coamd_stream_sample_at(h.stream, 2.0, &info, buf, 63, nullptr, 0, nullptr, 0), COAMD_ERR_NOT_FOUND);
  coamd_reader_destroy(r);
}

TEST(StreamContract, StreamInfoOfEveryReleasedSizeIsFilledUpToThatSize) {
  TestServer srv;
  Handles h;
  connect(h, srv);
  coamd_request r;
  coamd_request_init(&r, sizeof(r));
  r.duration_s = 1.f;
  r.cleanup = COAMD_CLEANUP_OFF;
  r.temperature = 0.6f;
  r.iterations = 3;
  ASSERT_EQ(coamd_stream_start(h.client, "ordered", &r, &h.stream), COAMD_OK);
  ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
  struct {
    coamd_stream_info i;
    unsigned char tail[16];
  } mem;
  // Version 1/2 size: the summary's settings are not written.
  std::memset(&mem, 0x77, sizeof(mem));
  mem.i.struct_size = 56;
  ASSERT_EQ(coamd_stream_info_get(h.stream, &mem.i), COAMD_OK) << coamd_last_error();
  EXPECT_EQ(mem.i.frames_received, 20u);
  EXPECT_EQ(mem.i.struct_size, 56);
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(&mem);
  for (size_t k = 56; k < sizeof(mem); ++k) ASSERT_EQ(bytes[k], 0x77) << "byte " << k;
  // Version 3 size: the settings, not version 4's interpretation fields.
  std::memset(&mem, 0x77, sizeof(mem));
  mem.i.struct_size = 88;
  ASSERT_EQ(coamd_stream_info_get(h.stream, &mem.i), COAMD_OK);
  EXPECT_EQ(mem.i.iterations, 3u);
  for (size_t k = 88; k < sizeof(mem); ++k) ASSERT_EQ(bytes[k], 0x77) << "byte " << k;
  // Version 4 size: everything.
  mem.i.struct_size = sizeof(coamd_stream_info);
  ASSERT_EQ(coamd_stream_info_get(h.stream, &mem.i), COAMD_OK);
  EXPECT_EQ(mem.i.cleanup_applied, 0);
  EXPECT_FLOAT_EQ(mem.i.temperature, 0.6f);
  EXPECT_EQ(mem.i.iterations, 3u);
  EXPECT_EQ(mem.i.ode_steps, 6u);
  EXPECT_EQ(mem.i.max_batch, 1u);
  for (size_t k = sizeof(coamd_stream_info); k < sizeof(mem); ++k) ASSERT_EQ(bytes[k], 0x77) << "byte " << k;
  for (int32_t bad : {52, 108}) {
    mem.i.struct_size = bad;
    EXPECT_EQ(coamd_stream_info_get(h.stream, &mem.i), COAMD_ERR_INVALID_ARGUMENT) << bad;
  }
  // The request's own size: below the version-1 size or above this library's is refused.
  r.struct_size = 60;
  coamd_stream* s = nullptr;
  EXPECT_EQ(coamd_stream_start(h.client, "ordered", &r, &s), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("accepts 64 to 88"), std::string::npos) << coamd_last_error();
  EXPECT_EQ(s, nullptr);
}

TEST(StreamContract, LongErrorsAreRetrievedInFull) {
  TestServer srv;
  Handles h;
  connect(h, srv);
  start(h, "longerror", 1.0f);
  ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
  const std::string want = "INVALID_ARGUMENT: " + FakeMotionService::long_message();
  int32_t len = 0;
  EXPECT_EQ(coamd_stream_error_copy(h.stream, nullptr, 0, &len), COAMD_ERR_BUFFER_TOO_SMALL);
  ASSERT_EQ(len, static_cast<int32_t>(want.size()));
  std::vector<char> buf(static_cast<size_t>(len) + 1);
  ASSERT_EQ(coamd_stream_error_copy(h.stream, buf.data(), len + 1, &len), COAMD_OK);
  EXPECT_EQ(std::string(buf.data()), want);
  EXPECT_EQ(std::string(buf.data()).substr(want.size() - 5), "(end)");
  // The version-1 function still truncates (to its buffer) as it always did.
  EXPECT_EQ(error_of(h.stream), want.substr(0, error_of(h.stream).size()));
  EXPECT_LT(error_of(h.stream).size(), want.size());
}

namespace {
struct LogSink {
  std::mutex mu;
  std::vector<std::pair<int, std::string>> lines;
  static void callback(int32_t level, const char* message, void* user) {
    auto* self = static_cast<LogSink*>(user);
    std::lock_guard<std::mutex> lock(self->mu);
    self->lines.emplace_back(level, message);
  }
  bool has(int level, const std::string& part) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& l : lines) {
      if (l.first == level && l.second.find(part) != std::string::npos) return true;
    }
    return false;
  }
};
}  // namespace

TEST(StreamContract, LogCallbackReceivesLibraryAndGrpcMessages) {
  LogSink sink;
  ASSERT_EQ(coamd_set_log_callback(&LogSink::callback, COAMD_LOG_DEBUG, &sink), COAMD_OK);
  TestServer srv;
  {
    Handles h;
    connect(h, srv);
    start(h, "abort", 1.0f);
    ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
    Handles ok;
    connect(ok, srv);
    start(ok, "ordered", 0.4f);
    ASSERT_EQ(coamd_stream_wait(ok.stream, 20.f), COAMD_OK);
  }
  EXPECT_TRUE(sink.has(COAMD_LOG_INFO, "connected to " + srv.target())) << "the library's own messages";
  EXPECT_TRUE(sink.has(COAMD_LOG_WARNING, "stream 'abort' failed after 0 frames: INVALID_ARGUMENT"));
  EXPECT_TRUE(sink.has(COAMD_LOG_DEBUG, "stream 'ordered' complete after 8 frames"));
  // gRPC's own log: an invalid target makes gRPC log an error while it builds the channel.
  coamd_client_options o;
  coamd_client_options_defaults(&o);
  o.connect_timeout_s = 1.f;
  coamd_client* c = nullptr;
  EXPECT_NE(coamd_client_create(("unix:/nonexistent/" + std::string(200, 'x')).c_str(), &o, nullptr, nullptr, &c),
            COAMD_OK);
  EXPECT_TRUE(sink.has(COAMD_LOG_ERROR, "grpc: ")) << "gRPC errors reach the callback";
  EXPECT_TRUE(sink.has(COAMD_LOG_WARNING, "connect: GetSkeleton on unix:/nonexistent/"));
  // A minimum level filters; after the callback is removed it is never called again.
  ASSERT_EQ(coamd_set_log_callback(&LogSink::callback, COAMD_LOG_WARNING, &sink), COAMD_OK);
  size_t before;
  {
    std::lock_guard<std::mutex> lock(sink.mu);
    before = sink.lines.size();
  }
  {
    Handles h;
    connect(h, srv);  // an INFO message: filtered
  }
  {
    std::lock_guard<std::mutex> lock(sink.mu);
    EXPECT_EQ(sink.lines.size(), before);
  }
  ASSERT_EQ(coamd_set_log_callback(nullptr, COAMD_LOG_OFF, nullptr), COAMD_OK);
  {
    Handles h;
    connect(h, srv);
    start(h, "abort", 1.0f);
    ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
  }
  std::lock_guard<std::mutex> lock(sink.mu);
  EXPECT_EQ(sink.lines.size(), before);
  coamd_set_log_callback(nullptr, COAMD_LOG_ERROR, nullptr);
}

TEST(StreamContract, AVersion1CallerWorksUnchanged) {
  TestServer srv;
  old_caller_report rep;
  old_caller_v1(srv.target().c_str(), "ordered", 1.0f, &rep);
  EXPECT_EQ(rep.header_abi_version, 1);
  EXPECT_EQ(rep.abi_version, COAMD_ABI_VERSION);
  ASSERT_EQ(rep.rc_create, COAMD_OK) << rep.error;
  EXPECT_EQ(rep.request_struct_size, 64) << "the version-1 coamd_request is 64 bytes";
  EXPECT_EQ(rep.request_canary_intact, 1) << "coamd_request_defaults wrote past the caller's struct";
  ASSERT_EQ(rep.rc_start, COAMD_OK) << rep.error;
  ASSERT_EQ(rep.rc_wait, COAMD_OK);
  EXPECT_EQ(rep.info_struct_size, 56);
  ASSERT_EQ(rep.rc_info, COAMD_OK) << rep.error;
  EXPECT_EQ(rep.info_canary_intact, 1) << "coamd_stream_info_get wrote past the caller's struct";
  EXPECT_EQ(rep.frames_received, 20u);
  EXPECT_EQ(rep.total_frames, 20u);
  EXPECT_EQ(rep.has_summary, 1);
  EXPECT_EQ(rep.rc_sample, COAMD_OK);
  EXPECT_EQ(rep.sample_state, COAMD_STATE_FINISHED);
  EXPECT_STREQ(rep.error, "");
  const v1::GenerateRequest got = srv.service.last_request();
  EXPECT_EQ(got.order(), v1::TOKEN_ORDER_LEFT_TO_RIGHT) << "the caller's fields reach the server";
  EXPECT_EQ(got.seed(), 5u);
  EXPECT_EQ(got.cleanup(), v1::CLEANUP_UNSPECIFIED) << "fields newer than the caller take the server default";
  EXPECT_EQ(got.temperature(), 0.f);
}

TEST(StreamContract, AVersion2CallerWorksAndSizesDecideTheNewerFields) {
  TestServer srv;
  for (int full : {0, 1}) {
    old_caller_report rep;
    old_caller_v2(srv.target().c_str(), "ordered", 1.0f, full, &rep);
    EXPECT_EQ(rep.header_abi_version, 2);
    ASSERT_EQ(rep.rc_create, COAMD_OK) << rep.error;
    EXPECT_EQ(rep.request_struct_size, 64);
    EXPECT_EQ(rep.request_canary_intact, 1);
    ASSERT_EQ(rep.rc_start, COAMD_OK) << rep.error;
    ASSERT_EQ(rep.rc_info, COAMD_OK) << rep.error;
    EXPECT_EQ(rep.info_canary_intact, 1);
    EXPECT_EQ(rep.frames_received, 20u);
    const v1::GenerateRequest got = srv.service.last_request();
    EXPECT_EQ(got.cleanup(), v1::CLEANUP_OFF) << "cleanup lies within the 64-byte version-1 size";
    // temperature lies past it: honoured when the caller declares its full size.
    EXPECT_FLOAT_EQ(got.temperature(), full ? 0.7f : 0.f) << "full size " << full;
    // the 72-byte struct's tail padding (garbage here) is not read as version 4's text_conditioning
    EXPECT_EQ(got.text_conditioning(), v1::TEXT_CONDITIONING_UNSPECIFIED) << "full size " << full;
  }
}

// ------------------------------------------------------------------------------- ABI version 4
TEST(StreamContract, CapabilitiesFillCallerSizedArraysAndAreFetchedOnce) {
  TestServer srv;
  Handles h;
  connect(h, srv);
  coamd_capabilities caps;
  caps.struct_size = sizeof(caps);
  ASSERT_EQ(coamd_client_capabilities(h.client, &caps, nullptr, 0, nullptr, 0), COAMD_OK) << coamd_last_error();
  EXPECT_EQ(caps.num_actions, 3);
  EXPECT_EQ(caps.num_styles, 1);
  EXPECT_FLOAT_EQ(caps.min_duration_s, 0.4f);
  EXPECT_FLOAT_EQ(caps.max_duration_s, 12.f);
  EXPECT_EQ(caps.max_text_chars, 512u);
  EXPECT_EQ(caps.rare_below_clips, 50u);
  struct {
    coamd_capability a[2];
    unsigned char tail[16];
  } mem;
  std::memset(&mem, 0x66, sizeof(mem));
  for (auto& a : mem.a) a.struct_size = sizeof(a);
  coamd_capability style;
  style.struct_size = sizeof(style);
  ASSERT_EQ(coamd_client_capabilities(h.client, &caps, mem.a, 2, &style, 1), COAMD_OK) << coamd_last_error();
  for (unsigned char b : mem.tail) ASSERT_EQ(b, 0x66) << "the third action was written past the array";
  EXPECT_STREQ(mem.a[0].label, "walk");
  EXPECT_STREQ(mem.a[1].label, "wave-left-hand");
  EXPECT_STREQ(mem.a[1].side, "left");
  EXPECT_STREQ(mem.a[1].description, "a person does wave-left-hand");
  EXPECT_EQ(mem.a[1].training_clips, 200u);
  EXPECT_STREQ(style.label, "elderly");
  EXPECT_EQ(style.training_clips, 42u);
  coamd_capability all[3];
  for (auto& a : all) a.struct_size = sizeof(a);
  ASSERT_EQ(coamd_client_capabilities(h.client, &caps, all, 3, nullptr, 0), COAMD_OK);
  EXPECT_EQ(std::strlen(all[2].description), sizeof(all[2].description) - 1) << "cut to the field";
  EXPECT_EQ(srv.service.capabilities_calls.load(), 1) << "cached after the first call";
  all[0].struct_size = 100;
  EXPECT_EQ(coamd_client_capabilities(h.client, &caps, all, 3, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
  caps.struct_size = 16;
  EXPECT_EQ(coamd_client_capabilities(h.client, &caps, nullptr, 0, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
  caps.struct_size = sizeof(caps);
  EXPECT_EQ(coamd_client_capabilities(h.client, &caps, nullptr, 2, nullptr, 0), COAMD_ERR_INVALID_ARGUMENT);
}

TEST(StreamContract, InterpretationRequestFieldsAndRootMotionReachTheEngine) {
  TestServer srv;
  Handles h;
  connect(h, srv);
  coamd_request r;
  coamd_request_defaults(&r);
  r.duration_s = 1.f;
  r.coordinates = COAMD_COORDS_UNITY;
  r.text_conditioning = COAMD_TEXT_CONDITIONING_RAW;
  r.skeleton = COAMD_SKELETON_RAW;
  r.root_motion = COAMD_ROOT_MOTION_IN_PLACE;
  ASSERT_EQ(coamd_stream_start(h.client, "ordered", &r, &h.stream), COAMD_OK) << coamd_last_error();
  ASSERT_EQ(coamd_stream_wait(h.stream, 20.f), COAMD_OK);
  const v1::GenerateRequest got = srv.service.last_request();
  EXPECT_EQ(got.text_conditioning(), v1::TEXT_CONDITIONING_RAW);
  EXPECT_EQ(got.skeleton(), v1::SKELETON_MODE_RAW);
  EXPECT_EQ(got.root_motion(), v1::ROOT_MOTION_IN_PLACE);
  coamd_stream_info info;
  info.struct_size = sizeof(info);
  ASSERT_EQ(coamd_stream_info_get(h.stream, &info), COAMD_OK);
  EXPECT_EQ(info.skeleton_applied, 0);
  EXPECT_EQ(info.root_motion, COAMD_ROOT_MOTION_IN_PLACE);
  EXPECT_EQ(info.out_of_vocabulary, 0);
  EXPECT_FLOAT_EQ(info.out_of_vocabulary_score, 0.05f);
  auto it = std::make_unique<coamd_interpretation>();
  it->struct_size = sizeof(coamd_interpretation);
  ASSERT_EQ(coamd_stream_interpretation(h.stream, it.get()), COAMD_OK) << coamd_last_error();
  EXPECT_EQ(it->num_content, COAMD_INTERPRETATION_MAX_LABELS) << "the server sent 10; the struct holds 8";
  EXPECT_STREQ(it->content_labels, "walk");
  EXPECT_STREQ(it->content_labels + 4 * COAMD_LABEL_CHARS, "wave-right-hand");
  EXPECT_FLOAT_EQ(it->content_scores[1], 0.25f);
  EXPECT_EQ(it->num_style, 1);
  EXPECT_STREQ(it->style_labels, "none");
  EXPECT_STREQ(it->side, "left");
  EXPECT_STREQ(it->note, "");
  EXPECT_STREQ(it->conditioned_text, "a person walks. ordered");
  // Root motion per frame, in the stream's (Unity) frame: x negated, heading negated.
  coamd_frame_info fi;
  coamd_frame_info_init(&fi, sizeof(fi));
  for (int k : {0, 3, 7}) {
    ASSERT_EQ(coamd_stream_sample_at(h.stream, k / 20.0, &fi, nullptr, 0, nullptr, 0, nullptr, 0), COAMD_OK);
    EXPECT_FLOAT_EQ(fi.root_velocity[0], -0.1f * k);
    EXPECT_FLOAT_EQ(fi.root_velocity[1], 0.f);
    EXPECT_FLOAT_EQ(fi.root_velocity[2], 1.f);
    EXPECT_FLOAT_EQ(fi.heading, -0.01f * k);
  }
  ASSERT_EQ(coamd_stream_sample_at(h.stream, 3.5 / 20.0, &fi, nullptr, 0, nullptr, 0, nullptr, 0), COAMD_OK);
  EXPECT_NEAR(fi.root_velocity[0], -0.35f, 1e-6f);
  EXPECT_NEAR(fi.heading, -0.035f, 1e-6f);
  // A version-3 caller's 56-byte coamd_frame_info gets nothing past its end.
  struct {
    coamd_frame_info i;
  } mem;
  std::memset(&mem, 0x55, sizeof(mem));
  mem.i.struct_size = 56;
  ASSERT_EQ(coamd_stream_sample_at(h.stream, 0.2, &mem.i, nullptr, 0, nullptr, 0, nullptr, 0), COAMD_OK);
  EXPECT_EQ(mem.i.frame, 4);
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(&mem);
  for (size_t k = 56; k < sizeof(mem); ++k) ASSERT_EQ(bytes[k], 0x55) << "byte " << k;
  // Unreal: centimetres per second.
  coamd_stream* ue = nullptr;
  r.coordinates = COAMD_COORDS_UNREAL;
  ASSERT_EQ(coamd_stream_start(h.client, "oov", &r, &ue), COAMD_OK);
  ASSERT_EQ(coamd_stream_wait(ue, 20.f), COAMD_OK);
  ASSERT_EQ(coamd_stream_sample_at(ue, 5 / 20.0, &fi, nullptr, 0, nullptr, 0, nullptr, 0), COAMD_OK);
  EXPECT_FLOAT_EQ(fi.root_velocity[0], 100.f);   // X = 100 z
  EXPECT_FLOAT_EQ(fi.root_velocity[1], -50.f);   // Y = -100 x
  EXPECT_FLOAT_EQ(fi.root_velocity[2], 0.f);
  EXPECT_FLOAT_EQ(fi.heading, -0.05f);
  ASSERT_EQ(coamd_stream_interpretation(ue, it.get()), COAMD_OK);
  EXPECT_EQ(it->out_of_vocabulary, 1);
  const size_t note_len = std::strlen(it->note);
  EXPECT_GT(note_len, 500u);
  EXPECT_LT(note_len, sizeof(it->note));
  EXPECT_NE(static_cast<unsigned char>(it->note[note_len - 1]) & 0xC0u, 0xC0u) << "cut on a character boundary";
  coamd_stream_destroy(ue);
  // Before the summary: NOT_FOUND; bad sizes refused.
  coamd_stream* slow = nullptr;
  r.duration_s = 2.f;
  ASSERT_EQ(coamd_stream_start(h.client, "slow", &r, &slow), COAMD_OK);
  EXPECT_EQ(coamd_stream_interpretation(slow, it.get()), COAMD_ERR_NOT_FOUND);
  it->struct_size = 100;
  EXPECT_EQ(coamd_stream_interpretation(slow, it.get()), COAMD_ERR_INVALID_ARGUMENT);
  coamd_stream_destroy(slow);
  r.root_motion = 3;
  coamd_stream* bad = nullptr;
  EXPECT_EQ(coamd_stream_start(h.client, "ordered", &r, &bad), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("root_motion"), std::string::npos);
}

namespace {
struct SessionHandle {
  coamd_session* s = nullptr;
  ~SessionHandle() { coamd_session_destroy(s); }
};

std::vector<coamd_session_event> drain(coamd_session* s, std::vector<std::string>* first_labels = nullptr) {
  std::vector<coamd_session_event> out;
  auto it = std::make_unique<coamd_interpretation>();
  for (;;) {
    coamd_session_event e;
    e.struct_size = sizeof(e);
    it->struct_size = sizeof(coamd_interpretation);
    const int rc = coamd_session_next_event(s, &e, it.get());
    if (rc == COAMD_ERR_NOT_FOUND) break;
    EXPECT_EQ(rc, COAMD_OK);
    if (rc != COAMD_OK) break;
    out.push_back(e);
    if (first_labels) first_labels->push_back(e.has_interpretation ? it->conditioned_text : "");
  }
  return out;
}
}  // namespace

TEST(StreamContract, ASessionPlaysOnFollowsInstructionsAndCloses) {
  TestServer srv;
  Handles h;
  connect(h, srv);
  coamd_session_options o;
  ASSERT_EQ(coamd_session_options_init(&o, sizeof(o)), COAMD_OK);
  EXPECT_EQ(o.history_frames, 1200u);
  EXPECT_FLOAT_EQ(o.buffering_delay_s, 0.2f);
  o.coordinates = COAMD_COORDS_UNITY;
  o.history_frames = 64;  // a small ring: the session outruns it many times
  o.buffering_delay_s = 0.1f;
  o.lookahead_s = 0.5f;
  o.root_motion = COAMD_ROOT_MOTION_IN_PLACE;
  o.seed = 9;
  SessionHandle sh;
  ASSERT_EQ(coamd_session_open(h.client, &o, "a person walks", &sh.s), COAMD_OK) << coamd_last_error();
  const auto& clip = coamd_test::real_clips().at(0);
  float pos[63], expect[63];
  coamd_frame_info fi;
  coamd_frame_info_init(&fi, sizeof(fi));
  const Clock::time_point t0 = Clock::now();
  uint32_t instructed = 0;
  int last = -1, playing = 0;
  std::vector<coamd_session_event> events;
  std::vector<std::string> texts;
  while (Clock::now() - t0 < std::chrono::milliseconds(2500)) {
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    ASSERT_EQ(coamd_session_sample(sh.s, t, &fi, pos, 63, nullptr, 0, nullptr, 0), COAMD_OK);
    if (fi.frame >= 0) {
      ASSERT_GE(fi.frame, last) << "never backwards";
      last = fi.frame;
      if (fi.alpha == 0.f) {
        coamd_convert_positions(clip.frame(fi.frame % clip.num_frames()), 21, COAMD_COORDS_RIGHT_HANDED_Y_UP,
                                COAMD_COORDS_UNITY, expect);
        for (int k = 0; k < 63; ++k) ASSERT_FLOAT_EQ(pos[k], expect[k]) << "frame " << fi.frame;
      }
      EXPECT_FLOAT_EQ(fi.root_velocity[2], 1.f);
      EXPECT_EQ(fi.coords, COAMD_COORDS_UNITY);
    }
    if (fi.state == COAMD_STATE_PLAYING) ++playing;
    if (!instructed && t > 1.0) ASSERT_EQ(coamd_session_instruct(sh.s, "a person waves", &instructed), COAMD_OK);
    auto more = drain(sh.s, &texts);
    events.insert(events.end(), more.begin(), more.end());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(instructed, 1u);
  EXPECT_GT(playing, 50);
  EXPECT_GT(fi.frames_available, 64u * 2) << "the ring wrapped";
  const v1::SessionOpen open = srv.service.last_open();
  EXPECT_EQ(open.text(), "a person walks");
  EXPECT_EQ(open.seed(), 9u);
  EXPECT_FLOAT_EQ(open.lookahead_s(), 0.5f);
  EXPECT_EQ(open.root_motion(), v1::ROOT_MOTION_IN_PLACE);
  EXPECT_EQ(open.coordinates(), v1::RIGHT_HANDED_Y_UP);
  ASSERT_EQ(coamd_session_close(sh.s), COAMD_OK);
  ASSERT_EQ(coamd_session_close(sh.s), COAMD_OK) << "idempotent";
  uint32_t n = 0;
  EXPECT_EQ(coamd_session_instruct(sh.s, "a person sits", &n), COAMD_ERR_STATE);
  ASSERT_EQ(coamd_session_wait(sh.s, 10.f), COAMD_OK);
  auto more = drain(sh.s, &texts);
  events.insert(events.end(), more.begin(), more.end());
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events[0].kind, COAMD_SESSION_OPENED);
  EXPECT_EQ(events[1].kind, COAMD_SESSION_INSTRUCTION);
  EXPECT_EQ(events[1].instruction, 0u);
  EXPECT_EQ(texts[1], "a person walks. a person walks");
  EXPECT_EQ(events[2].kind, COAMD_SESSION_INSTRUCTION);
  EXPECT_EQ(events[2].instruction, 1u);
  EXPECT_GT(events[2].first_frame, 0u);
  EXPECT_FLOAT_EQ(events[2].latency_ms, 12.f);
  EXPECT_EQ(texts[2], "a person walks. a person waves");
  const coamd_session_event closed = events.back();
  EXPECT_EQ(closed.kind, COAMD_SESSION_CLOSED);
  ASSERT_EQ(coamd_session_sample(sh.s, 1e6, &fi, pos, 63, nullptr, 0, nullptr, 0), COAMD_OK);
  EXPECT_EQ(fi.state, COAMD_STATE_FINISHED);
  EXPECT_EQ(static_cast<uint32_t>(fi.frame), closed.first_frame - 1);
  EXPECT_EQ(fi.total_frames, closed.first_frame);
  int32_t len = -1;
  EXPECT_EQ(coamd_session_error_copy(sh.s, nullptr, 0, &len), COAMD_ERR_BUFFER_TOO_SMALL);  // no room for the NUL
  EXPECT_EQ(len, 0) << "no failure";
}

TEST(StreamContract, SessionFailuresAndArgumentsAreReported) {
  TestServer srv;
  Handles h;
  connect(h, srv);
  SessionHandle refused;
  ASSERT_EQ(coamd_session_open(h.client, nullptr, "refuse", &refused.s), COAMD_OK) << coamd_last_error();
  ASSERT_EQ(coamd_session_wait(refused.s, 10.f), COAMD_OK);
  char buf[256];
  int32_t len = 0;
  ASSERT_EQ(coamd_session_error_copy(refused.s, buf, sizeof(buf), &len), COAMD_OK);
  EXPECT_EQ(std::string(buf), "INVALID_ARGUMENT: text: refused");
  coamd_frame_info fi;
  coamd_frame_info_init(&fi, sizeof(fi));
  ASSERT_EQ(coamd_session_sample(refused.s, 1.0, &fi, nullptr, 0, nullptr, 0, nullptr, 0), COAMD_OK);
  EXPECT_EQ(fi.state, COAMD_STATE_ERROR);
  uint32_t n = 0;
  EXPECT_EQ(coamd_session_instruct(refused.s, "x", &n), COAMD_ERR_STATE);

  SessionHandle cancelled;
  ASSERT_EQ(coamd_session_open(h.client, nullptr, "a person runs", &cancelled.s), COAMD_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(coamd_session_cancel(cancelled.s), COAMD_OK);
  ASSERT_EQ(coamd_session_wait(cancelled.s, 10.f), COAMD_OK);
  ASSERT_EQ(coamd_session_sample(cancelled.s, 1.0, &fi, nullptr, 0, nullptr, 0, nullptr, 0), COAMD_OK);
  EXPECT_EQ(fi.state, COAMD_STATE_CANCELLED);

  coamd_session_options o;
  ASSERT_EQ(coamd_session_options_init(&o, sizeof(o)), COAMD_OK);
  EXPECT_EQ(coamd_session_options_init(&o, 64), COAMD_ERR_INVALID_ARGUMENT);
  coamd_session* s = nullptr;
  o.history_frames = 10;
  EXPECT_EQ(coamd_session_open(h.client, &o, "a person walks", &s), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("history_frames"), std::string::npos);
  o.history_frames = 0;
  o.struct_size = 80;
  EXPECT_EQ(coamd_session_open(h.client, &o, "a person walks", &s), COAMD_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(coamd_last_error()).find("newer"), std::string::npos);
  EXPECT_EQ(s, nullptr);
  coamd_session_event e;
  e.struct_size = sizeof(e);
  EXPECT_EQ(coamd_session_next_event(nullptr, &e, nullptr), COAMD_ERR_INVALID_ARGUMENT);
}
