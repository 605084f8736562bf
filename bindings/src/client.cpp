#include "coamd/client.hpp"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "coamd/log.hpp"
#include "coamd/rig.hpp"
#include "coamd/v1/motion.grpc.pb.h"

namespace coamd {

namespace v1 = ::coamd::v1;
using Clock = std::chrono::steady_clock;

struct ClientCore {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::MotionService::Stub> stub;
  std::string token;

  void prepare(grpc::ClientContext& ctx) const {
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  }
};

struct Receiver::Context {
  grpc::ClientContext ctx;
};

namespace {

std::string status_text(const grpc::Status& st) {
  static const char* const names[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int code = static_cast<int>(st.error_code());
  const char* name = code >= 0 && code <= 16 ? names[code] : "UNKNOWN";
  return std::string(name) + ": " + st.error_message();
}

float ms_since(Clock::time_point t0) {
  return std::chrono::duration<float, std::milli>(Clock::now() - t0).count();
}

Interpretation interpretation_of(const v1::Interpretation& in) {
  Interpretation out;
  for (const auto& l : in.content()) out.content.emplace_back(l.label(), l.score());
  for (const auto& l : in.style()) out.style.emplace_back(l.label(), l.score());
  out.side = in.side();
  out.note = in.note();
  out.conditioned_text = in.conditioned_text();
  out.out_of_vocabulary = in.out_of_vocabulary();
  out.out_of_vocabulary_score = in.out_of_vocabulary_score();
  return out;
}

// Heading (radians about up) from the project frame to `c`: both engine frames mirror it (-h).
float heading_to(float h, Coords c) { return c == Coords::RightHandedYUp ? h : -h; }

// Checks one received frame and writes it into the buffer's next slot (converted to `coords`).
// Returns "" or what is wrong with it; the caller publishes the slot.
std::string ingest_frame(FrameBuffer& buf, const v1::Frame& f, bool server_rotations, const float* rest,
                         Coords coords) {
  const uint32_t expected = buf.count();
  if (f.index() != expected) {
    return "frame index " + std::to_string(f.index()) + " arrived, expected " + std::to_string(expected);
  }
  if (f.positions_size() != kPosFloats) {
    return "frame " + std::to_string(f.index()) + " has " + std::to_string(f.positions_size()) +
           " position floats, expected 63";
  }
  if (server_rotations && f.rotations_size() != kRotFloats) {
    return "frame " + std::to_string(f.index()) + " has " + std::to_string(f.rotations_size()) +
           " rotation floats, expected 84 (server_rotations was asked for)";
  }
  if (!std::all_of(f.positions().begin(), f.positions().end(), [](float v) { return std::isfinite(v); })) {
    return "frame " + std::to_string(f.index()) + " has non-finite positions";
  }
  FrameSlot* slot = buf.next_slot();
  if (!slot) {
    return "the server sent more than the buffer's " + std::to_string(buf.capacity()) +
           " frames (raise capacity_frames)";
  }
  float pos[kPosFloats];
  std::copy(f.positions().begin(), f.positions().end(), pos);
  if (server_rotations) {
    std::copy(f.rotations().begin(), f.rotations().end(), slot->local);
    for (int j = 0; j < kNumJoints; ++j) {  // renormalise what came over the wire
      float* q = slot->local + 4 * j;
      const float n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
      if (n > 1e-6f) { q[0] /= n; q[1] /= n; q[2] /= n; q[3] /= n; } else { q[0] = q[1] = q[2] = 0.f; q[3] = 1.f; }
    }
    local_to_world(slot->local, slot->world);
  } else {
    solve_rotations(pos, rest, slot->local, slot->world);
  }
  convert_positions(pos, kNumJoints, Coords::RightHandedYUp, coords, slot->positions);
  convert_rotations(slot->local, kNumJoints, Coords::RightHandedYUp, coords, slot->local);
  convert_rotations(slot->world, kNumJoints, Coords::RightHandedYUp, coords, slot->world);
  float vel[3] = {0.f, 0.f, 0.f};
  if (f.root_velocity_size() == 3 && std::all_of(f.root_velocity().begin(), f.root_velocity().end(),
                                                 [](float v) { return std::isfinite(v); })) {
    std::copy(f.root_velocity().begin(), f.root_velocity().end(), vel);
  }
  convert_positions(vel, 1, Coords::RightHandedYUp, coords, slot->root_velocity);
  slot->heading = std::isfinite(f.heading()) ? heading_to(f.heading(), coords) : 0.f;
  return std::string();
}

// One response's frames into the buffer, each published once it checks out (`first` runs right
// before frame 0 is published). Returns "" or what is wrong with the first bad frame.
template <class First>
std::string ingest_frames(FrameBuffer& buf, const google::protobuf::RepeatedPtrField<v1::Frame>& frames,
                          bool server_rotations, const float* rest, Coords coords, First&& first) {
  for (const v1::Frame& f : frames) {
    const uint32_t expected = buf.count();
    std::string problem = ingest_frame(buf, f, server_rotations, rest, coords);
    if (!problem.empty()) return problem;
    if (expected == 0) first();
    buf.publish();
  }
  return std::string();
}

// How a receiver thread's RPC ended, into the buffer: a malformed frame (`problem`), a cancel, the
// RPC's error status, no end marker (`ended` false), a frame count other than the end marker's
// `total`, or complete. `what` names the RPC ("stream"), `marker` its end marker ("summary").
void end_buffer(FrameBuffer& buf, const std::string& problem, bool cancelled, const grpc::Status& st, bool ended,
                uint32_t total, const char* what, const char* marker) {
  if (!problem.empty()) {
    buf.fail(problem);
  } else if (cancelled) {
    buf.cancel();
  } else if (!st.ok()) {
    buf.fail(status_text(st));
  } else if (!ended) {
    buf.fail(std::string("the ") + what + " ended without a " + marker + " after " + std::to_string(buf.count()) +
             " frames");
  } else if (total != buf.count()) {
    buf.fail(std::string("the ") + marker + " says " + std::to_string(total) + " frames but " +
             std::to_string(buf.count()) + " arrived");
  } else {
    buf.complete(total);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------- Client
Client::Client(const std::string& target, const coamd_client_options& options, const std::string& root_certs,
               const std::string& token)
    : core_(std::make_shared<ClientCore>()) {
  if (target.empty()) throw Error(COAMD_ERR_INVALID_ARGUMENT, "target is empty; expected host:port");
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.use_tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = root_certs;
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  core_->channel = grpc::CreateCustomChannel(target, creds, args);
  core_->stub = v1::MotionService::NewStub(core_->channel);
  core_->token = token;

  const float timeout = options.connect_timeout_s > 0.f ? options.connect_timeout_s : 5.f;
  timeout_s_ = timeout;
  grpc::ClientContext ctx;
  core_->prepare(ctx);
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000.f)));
  v1::GetSkeletonRequest req;
  req.set_coordinates(v1::RIGHT_HANDED_Y_UP);
  v1::Skeleton sk;
  const grpc::Status st = core_->stub->GetSkeleton(&ctx, req, &sk);
  if (!st.ok()) {
    const bool unreachable = st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                             st.error_code() == grpc::StatusCode::UNAVAILABLE;
    const std::string msg = "GetSkeleton on " + target + " failed: " + status_text(st);
    log_message(COAMD_LOG_WARNING, "connect: " + msg);
    throw Error(unreachable ? COAMD_ERR_CONNECT : COAMD_ERR_RPC, msg);
  }
  if (sk.rest_offsets_size() != kPosFloats || sk.parents_size() != kNumJoints) {
    throw Error(COAMD_ERR_RPC, "server skeleton has " + std::to_string(sk.parents_size()) + " joints and " +
                                   std::to_string(sk.rest_offsets_size()) + " offset floats; expected 21 and 63");
  }
  for (int j = 0; j < kNumJoints; ++j) {
    if (sk.parents(j) != kParents[j]) {
      throw Error(COAMD_ERR_RPC, "server skeleton parent of joint " + std::to_string(j) + " is " +
                                     std::to_string(sk.parents(j)) + ", expected " + std::to_string(kParents[j]));
    }
  }
  for (int k = 0; k < kPosFloats; ++k) rest_[k] = sk.rest_offsets(k);
  log_message(COAMD_LOG_INFO, "connected to " + target + (options.use_tls ? " (TLS)" : " (plaintext)"));
}

Client::~Client() = default;

std::shared_ptr<Stream> Client::start(const std::string& text, const coamd_request& req) {
  if (!valid_coords(req.coordinates)) {
    throw Error(COAMD_ERR_INVALID_ARGUMENT, "coordinates " + std::to_string(req.coordinates) +
                                               " is not a coamd_coords value (0, 1, 2)");
  }
  if (!(req.duration_s > 0.f) || req.duration_s > 600.f) {
    throw Error(COAMD_ERR_INVALID_ARGUMENT, "duration_s must be in (0, 600] seconds, got " +
                                               std::to_string(req.duration_s));
  }
  if (!(req.buffering_delay_s >= 0.f) || req.buffering_delay_s > 60.f) {
    throw Error(COAMD_ERR_INVALID_ARGUMENT, "buffering_delay_s must be in [0, 60] seconds, got " +
                                               std::to_string(req.buffering_delay_s));
  }
  for (const auto& [name, v] : {std::pair<const char*, int32_t>{"text_conditioning", req.text_conditioning},
                                {"skeleton", req.skeleton}, {"root_motion", req.root_motion}}) {
    if (v < 0 || v > 2) throw Error(COAMD_ERR_INVALID_ARGUMENT, std::string(name) + " must be 0, 1 or 2, got " + std::to_string(v));
  }
  if (req.capacity_frames > 1000000u) {
    throw Error(COAMD_ERR_INVALID_ARGUMENT, "capacity_frames must be at most 1000000");
  }
  std::shared_ptr<Stream> s(new Stream(core_, text, req, rest_));
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

const Capabilities& Client::capabilities() {
  std::lock_guard<std::mutex> lock(caps_mu_);
  if (caps_) return *caps_;
  grpc::ClientContext ctx;
  core_->prepare(ctx);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(std::max(timeout_s_, 10.f) * 1000.f)));
  v1::Capabilities c;
  const grpc::Status st = core_->stub->GetCapabilities(&ctx, v1::GetCapabilitiesRequest(), &c);
  if (!st.ok()) throw Error(COAMD_ERR_RPC, "GetCapabilities failed: " + status_text(st));
  auto out = std::make_unique<Capabilities>();
  auto copy = [](const google::protobuf::RepeatedPtrField<v1::Capability>& in, std::vector<Capability>& to) {
    for (const v1::Capability& x : in) {
      Capability cap{x.label(), x.description(), x.side(), x.training_clips(), {}};
      for (const v1::LabelCount& r : x.recorded_with()) cap.recorded_with.emplace_back(r.label(), r.training_clips());
      to.push_back(std::move(cap));
    }
  };
  copy(c.actions(), out->actions);
  copy(c.styles(), out->styles);
  out->min_duration_s = c.min_duration_s();
  out->max_duration_s = c.max_duration_s();
  out->fps = c.fps();
  out->max_text_chars = c.max_text_chars();
  out->rare_below_clips = c.rare_below_clips();
  caps_ = std::move(out);
  return *caps_;
}

std::unique_ptr<Session> Client::open_session(const std::string& text, const coamd_session_options& o) {
  if (!valid_coords(o.coordinates)) {
    throw Error(COAMD_ERR_INVALID_ARGUMENT, "coordinates " + std::to_string(o.coordinates) +
                                               " is not a coamd_coords value (0, 1, 2)");
  }
  if (!(o.buffering_delay_s >= 0.f) || o.buffering_delay_s > 60.f) {
    throw Error(COAMD_ERR_INVALID_ARGUMENT, "buffering_delay_s must be in [0, 60] seconds");
  }
  if (!(o.lookahead_s >= 0.f) || o.lookahead_s > 60.f) {
    throw Error(COAMD_ERR_INVALID_ARGUMENT, "lookahead_s must be in [0, 60] seconds");
  }
  if (o.history_frames != 0 && (o.history_frames < 64u || o.history_frames > 1000000u)) {
    throw Error(COAMD_ERR_INVALID_ARGUMENT, "history_frames must be 0 (default) or 64 .. 1000000");
  }
  for (const auto& [name, v] : {std::pair<const char*, int32_t>{"text_conditioning", o.text_conditioning},
                                {"root_motion", o.root_motion}, {"cleanup", o.cleanup}, {"guidance", o.guidance}}) {
    if (v < 0 || v > 2) throw Error(COAMD_ERR_INVALID_ARGUMENT, std::string(name) + " must be 0, 1 or 2, got " + std::to_string(v));
  }
  std::unique_ptr<Session> s(new Session(core_, text, o, rest_));
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

// -------------------------------------------------------------------------------------- Receiver
Receiver::Receiver(std::shared_ptr<ClientCore> core, std::string text, Coords coords, const float* rest,
                   uint32_t capacity_frames, bool ring, float buffering_delay_s)
    : core_(std::move(core)),
      text_(std::move(text)),
      coords_(coords),
      buf_(new FrameBuffer(capacity_frames, ring)),
      playback_(*buf_, kFps, buffering_delay_s),
      ctx_(new Context) {
  std::memcpy(rest_, rest, sizeof(rest_));
  core_->prepare(ctx_->ctx);
}

Receiver::~Receiver() = default;

void Receiver::stop() {
  cancel();
  if (thread_.joinable()) thread_.join();
}

void Receiver::cancel() {
  if (!receiving()) return;
  cancel_requested_.store(true, std::memory_order_release);
  buf_->cancel();
  ctx_->ctx.TryCancel();
}

bool Receiver::wait(float timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  auto ended = [this] { return done_.load(std::memory_order_acquire); };
  if (timeout_s <= 0.f) {
    cv_.wait(lock, ended);
    return true;
  }
  return cv_.wait_for(lock, std::chrono::duration<float>(timeout_s), ended);
}

// ---------------------------------------------------------------------------------------- Stream
static uint32_t capacity_for(const coamd_request& req) {
  if (req.capacity_frames > 0) return req.capacity_frames;
  return static_cast<uint32_t>(std::ceil(req.duration_s * kFps)) + 16u;
}

Stream::Stream(std::shared_ptr<ClientCore> core, std::string text, const coamd_request& req, const float* rest)
    : Receiver(std::move(core), std::move(text), static_cast<Coords>(req.coordinates), rest, capacity_for(req),
               false, req.buffering_delay_s),
      req_(req) {
  if (req.deadline_s > 0.f) {
    ctx_->ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(static_cast<int64_t>(req.deadline_s * 1000.f)));
  }
}

Stream::~Stream() { stop(); }

StreamStats Stream::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Stream::run() {
  v1::GenerateRequest r;
  r.set_text(text_);
  r.set_duration_s(req_.duration_s);
  r.set_seed(req_.seed);
  r.set_guidance(static_cast<v1::Guidance>(req_.guidance));
  r.set_guidance_scale(req_.guidance_scale);
  r.set_cfg_scale(req_.cfg_scale);
  r.set_iterations(req_.iterations);
  r.set_ode_steps(req_.ode_steps);
  r.set_order(static_cast<v1::TokenOrder>(req_.order));
  r.set_cleanup(static_cast<v1::Cleanup>(req_.cleanup));
  r.set_temperature(req_.temperature);
  r.set_coordinates(v1::RIGHT_HANDED_Y_UP);  // converted here, in one place
  r.set_include_rotations(req_.server_rotations != 0);
  r.set_text_conditioning(static_cast<v1::TextConditioning>(req_.text_conditioning));
  r.set_skeleton(static_cast<v1::SkeletonMode>(req_.skeleton));
  r.set_root_motion(static_cast<v1::RootMotion>(req_.root_motion));

  const Clock::time_point t0 = Clock::now();
  std::string problem;  // a malformed stream, reported instead of the RPC status
  bool summary = false;
  uint32_t summary_total = 0;
  {
    std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = core_->stub->Generate(&ctx_->ctx, r);
    v1::GenerateResponse resp;
    while (reader->Read(&resp)) {
      if (!problem.empty()) continue;  // drain after a cancel
      problem = ingest_frames(*buf_, resp.frames(), req_.server_rotations != 0, rest_, coords_, [&] {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.client_ttff_ms = ms_since(t0);
      });
      if (!problem.empty()) {
        ctx_->ctx.TryCancel();
        continue;
      }
      if (resp.has_summary()) {
        const v1::GenerateSummary& s = resp.summary();
        summary = true;
        summary_total = s.total_frames();
        std::lock_guard<std::mutex> lock(mu_);
        stats_.has_summary = true;
        stats_.server_ttff_ms = s.time_to_first_frame_ms();
        stats_.server_total_ms = s.total_ms();
        stats_.server_queue_ms = s.queue_ms();
        stats_.guidance_applied = s.guidance_applied();
        stats_.seed = s.seed();
        stats_.cleanup_applied = s.cleanup_applied();
        stats_.temperature = s.temperature();
        stats_.iterations = s.iterations();
        stats_.ode_steps = s.ode_steps();
        stats_.cfg_scale = s.cfg_scale();
        stats_.guidance_scale = s.guidance_scale();
        stats_.max_batch = s.max_batch();
        stats_.skeleton_applied = s.skeleton_applied();
        stats_.root_motion = s.root_motion() == "in_place" ? COAMD_ROOT_MOTION_IN_PLACE
                             : s.root_motion() == "world"  ? COAMD_ROOT_MOTION_WORLD
                                                           : 0;
        stats_.has_interpretation = s.has_interpretation();
        if (s.has_interpretation()) stats_.interpretation = interpretation_of(s.interpretation());
      }
    }
    const grpc::Status st = reader->Finish();
    end_buffer(*buf_, problem, cancel_requested_.load(std::memory_order_acquire), st, summary, summary_total,
               "stream", "summary");
  }
  const std::string quoted = "'" + (text_.size() > 60 ? text_.substr(0, 57) + "..." : text_) + "'";
  if (buf_->status() == StreamStatus::Failed) {
    log_message(COAMD_LOG_WARNING, "stream " + quoted + " failed after " + std::to_string(buf_->count()) +
                               " frames: " + buf_->error());
  } else if (log_enabled(COAMD_LOG_DEBUG)) {
    log_message(COAMD_LOG_DEBUG, "stream " + quoted + (buf_->status() == StreamStatus::Cancelled ? " cancelled" : " complete") +
                             " after " + std::to_string(buf_->count()) + " frames");
  }
  finish([&] { stats_.client_total_ms = ms_since(t0); });
}

// --------------------------------------------------------------------------------------- Session
struct Session::Rpc {
  std::unique_ptr<grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionResponse>> stream;
};

Session::Session(std::shared_ptr<ClientCore> core, std::string text, const coamd_session_options& opts,
                 const float* rest)
    : Receiver(std::move(core), std::move(text), static_cast<Coords>(opts.coordinates), rest,
               opts.history_frames ? opts.history_frames : 1200u, true, opts.buffering_delay_s),
      opts_(opts),
      rpc_(new Rpc) {
  rpc_->stream = core_->stub->Session(&ctx_->ctx);
  v1::SessionRequest first;
  v1::SessionOpen* o = first.mutable_open();
  o->set_text(text_);
  o->set_seed(opts.seed);
  o->set_guidance(static_cast<v1::Guidance>(opts.guidance));
  o->set_guidance_scale(opts.guidance_scale);
  o->set_cfg_scale(opts.cfg_scale);
  o->set_iterations(opts.iterations);
  o->set_ode_steps(opts.ode_steps);
  o->set_coordinates(v1::RIGHT_HANDED_Y_UP);  // converted here
  o->set_include_rotations(opts.server_rotations != 0);
  o->set_cleanup(static_cast<v1::Cleanup>(opts.cleanup));
  o->set_temperature(opts.temperature);
  o->set_text_conditioning(static_cast<v1::TextConditioning>(opts.text_conditioning));
  o->set_lookahead_s(opts.lookahead_s);
  o->set_root_motion(static_cast<v1::RootMotion>(opts.root_motion));
  rpc_->stream->Write(first);  // a failure shows in Read / Finish on the receiver thread
}

Session::~Session() { stop(); }

uint32_t Session::instruct(const std::string& text) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (closed_) throw Error(COAMD_ERR_STATE, "the session was closed or has ended");
  if (!receiving()) throw Error(COAMD_ERR_STATE, "the session has ended");
  v1::SessionRequest r;
  r.mutable_instruction()->set_text(text);
  if (!rpc_->stream->Write(r)) throw Error(COAMD_ERR_STATE, "the session has ended (the server stopped reading)");
  return next_instruction_++;
}

void Session::close() {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (closed_ || !receiving()) {
    closed_ = true;
    return;
  }
  closed_ = true;
  v1::SessionRequest r;
  r.mutable_close();
  if (rpc_->stream->Write(r)) rpc_->stream->WritesDone();
}

bool Session::next_event(SessionEvent* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (events_.empty()) return false;
  *out = std::move(events_.front());
  events_.pop_front();
  return true;
}

void Session::run() {
  std::string problem;
  bool closed_event = false;
  uint32_t total = 0;
  v1::SessionResponse resp;
  while (rpc_->stream->Read(&resp)) {
    if (!problem.empty()) continue;
    problem = ingest_frames(*buf_, resp.frames(), opts_.server_rotations != 0, rest_, coords_, [] {});
    if (!problem.empty()) {
      ctx_->ctx.TryCancel();
      continue;
    }
    for (const v1::SessionEvent& e : resp.events()) {
      SessionEvent ev;
      ev.kind = static_cast<int32_t>(e.kind());
      ev.instruction = e.instruction();
      ev.first_frame = e.first_frame();
      ev.latency_ms = e.latency_ms();
      ev.has_interpretation = e.has_interpretation();
      if (e.has_interpretation()) ev.interpretation = interpretation_of(e.interpretation());
      if (e.kind() == v1::SessionEvent::CLOSED) {
        closed_event = true;
        total = e.first_frame();
      }
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(std::move(ev));
    }
  }
  {
    std::lock_guard<std::mutex> lock(write_mu_);  // no Write may overlap Finish
    closed_ = true;
  }
  const grpc::Status st = rpc_->stream->Finish();
  end_buffer(*buf_, problem, cancel_requested_.load(std::memory_order_acquire), st, closed_event, total, "session",
             "CLOSED event");
  if (buf_->status() == StreamStatus::Failed) {
    log_message(COAMD_LOG_WARNING, "session failed after " + std::to_string(buf_->count()) + " frames: " + buf_->error());
  }
  finish([] {});
}

}  // namespace coamd
