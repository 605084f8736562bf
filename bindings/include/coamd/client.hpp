// gRPC side of the native client: a connection (TLS and bearer token optional), Generate streams
// and sessions, each received on a background thread into a FrameBuffer (their common part is
// Receiver). The C ABI (coamd_client.h) and the pybind11 module sit on top of these classes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <deque>
#include <utility>
#include <vector>

#include "coamd/coamd_client.h"
#include "coamd/convert.hpp"
#include "coamd/frame_buffer.hpp"
#include "coamd/playback.hpp"

namespace coamd {

struct ClientCore;  // channel + stub (gRPC types stay in client.cpp)

class Error : public std::exception {
 public:
  Error(coamd_status code, std::string message) : code_(code), message_(std::move(message)) {}
  coamd_status code() const { return code_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  coamd_status code_;
  std::string message_;
};

// How the server understood a text (GenerateSummary / SessionEvent interpretation).
struct Interpretation {
  std::vector<std::pair<std::string, float>> content, style;
  std::string side, note, conditioned_text;
  bool out_of_vocabulary = false;
  float out_of_vocabulary_score = 0.f;
};

struct Capability {
  std::string label, description, side;
  uint32_t training_clips = 0;
  // styles an action was recorded in (for a style: the actions), with training clips per pair
  std::vector<std::pair<std::string, uint32_t>> recorded_with;
};

struct Capabilities {
  std::vector<Capability> actions, styles;
  float min_duration_s = 0.f, max_duration_s = 0.f, fps = 0.f;
  uint32_t max_text_chars = 0, rare_below_clips = 0;
};

struct SessionEvent {
  int32_t kind = 0;
  uint32_t instruction = 0, first_frame = 0;
  float latency_ms = 0.f;
  bool has_interpretation = false;
  Interpretation interpretation;
};

struct StreamStats {
  float client_ttff_ms = 0.f, client_total_ms = 0.f;
  float server_ttff_ms = 0.f, server_total_ms = 0.f, server_queue_ms = 0.f;
  bool guidance_applied = false, has_summary = false, cleanup_applied = false;
  uint64_t seed = 0;
  float temperature = 0.f, cfg_scale = 0.f, guidance_scale = 0.f;
  uint32_t iterations = 0, ode_steps = 0, max_batch = 0;
  bool skeleton_applied = false, has_interpretation = false;
  int32_t root_motion = 0;  // coamd_root_motion reported by the server
  Interpretation interpretation;
};

// What a Stream and a Session share: frames received on a background thread (the derived class's
// run()) into a FrameBuffer, played back by a Playback. cancel() stops the RPC; wait() and receiving()
// follow the receiver thread's end.
class Receiver {
 public:
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  const FrameBuffer& buffer() const { return *buf_; }
  Playback& playback() { return playback_; }
  Coords coords() const { return coords_; }
  void cancel();
  bool wait(float timeout_s);  // true once the receiver thread has finished; timeout_s <= 0: no limit
  bool receiving() const { return !done_.load(std::memory_order_acquire); }

 protected:
  Receiver(std::shared_ptr<ClientCore> core, std::string text, Coords coords, const float* rest_offsets,
           uint32_t capacity_frames, bool ring, float buffering_delay_s);
  ~Receiver();
  // Cancels a running RPC and joins the receiver thread: a derived destructor's first step (the
  // thread uses the derived class's members).
  void stop();
  // The receiver thread's last step: under mu_, `last` (e.g. final statistics) and done; then wait()
  // returns.
  template <class Last>
  void finish(Last&& last) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last();
      done_.store(true, std::memory_order_release);
    }
    cv_.notify_all();
  }

  std::shared_ptr<ClientCore> core_;
  std::string text_;
  Coords coords_;
  float rest_[kPosFloats];
  std::unique_ptr<FrameBuffer> buf_;
  Playback playback_;
  struct Context;  // the RPC's grpc::ClientContext (gRPC types stay in client.cpp)
  std::unique_ptr<Context> ctx_;  // declared here: outlives a derived class's call objects
  std::atomic<bool> done_{false};
  std::atomic<bool> cancel_requested_{false};
  mutable std::mutex mu_;  // guards the wait condition and what a derived class says (never sample())
  std::condition_variable cv_;
  std::thread thread_;
};

// A Generate stream. Owned through std::shared_ptr: the C handle and every reader hold one, so the
// frames outlive whichever is released first. The destructor cancels a running stream and joins its
// thread.
class Stream : public Receiver {
 public:
  ~Stream();
  float buffering_delay_s() const { return req_.buffering_delay_s; }
  StreamStats stats() const;

 private:
  friend class Client;
  Stream(std::shared_ptr<ClientCore> core, std::string text, const coamd_request& req,
         const float* rest_offsets);
  void run();

  coamd_request req_;
  StreamStats stats_;  // guarded by mu_
};

// A Session RPC: frames into a ring FrameBuffer on a background thread, instructions sent from any
// thread, events queued for the engine. Destruction cancels a running session and joins.
class Session : public Receiver {
 public:
  ~Session();
  uint32_t instruct(const std::string& text);  // throws Error (COAMD_ERR_STATE when closed / ended)
  void close();
  bool next_event(SessionEvent* out);

 private:
  friend class Client;
  Session(std::shared_ptr<ClientCore> core, std::string text, const coamd_session_options& opts,
          const float* rest_offsets);
  void run();

  coamd_session_options opts_;
  struct Rpc;
  std::unique_ptr<Rpc> rpc_;
  std::mutex write_mu_;  // one writer at a time on the RPC; guards closed_, next_instruction_
  bool closed_ = false;
  uint32_t next_instruction_ = 1;
  std::deque<SessionEvent> events_;  // guarded by mu_
};

class Client {
 public:
  // Throws Error (COAMD_ERR_CONNECT / COAMD_ERR_RPC / COAMD_ERR_INVALID_ARGUMENT).
  Client(const std::string& target, const coamd_client_options& options, const std::string& root_certs,
         const std::string& token);
  ~Client();
  // Rest offsets (63 floats) in the project frame, from GetSkeleton.
  const float* rest_offsets() const { return rest_; }
  std::shared_ptr<Stream> start(const std::string& text, const coamd_request& req);
  std::unique_ptr<Session> open_session(const std::string& text, const coamd_session_options& opts);
  // GetCapabilities, fetched on first use and cached. Throws Error.
  const Capabilities& capabilities();

 private:
  std::shared_ptr<ClientCore> core_;
  std::mutex caps_mu_;
  std::unique_ptr<Capabilities> caps_;
  float timeout_s_ = 5.f;
  float rest_[kPosFloats];
};

}  // namespace coamd
