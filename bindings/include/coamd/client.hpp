// gRPC side of the native client: a connection (TLS and bearer token optional) and Generate
// streams received on a background thread into a FrameBuffer. The C ABI (coamd_client.h) and the
// pybind11 module sit on top of these classes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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

struct StreamStats {
  float client_ttff_ms = 0.f, client_total_ms = 0.f;
  float server_ttff_ms = 0.f, server_total_ms = 0.f, server_queue_ms = 0.f;
  bool guidance_applied = false, has_summary = false, cleanup_applied = false;
  uint64_t seed = 0;
  float temperature = 0.f, cfg_scale = 0.f, guidance_scale = 0.f;
  uint32_t iterations = 0, ode_steps = 0, max_batch = 0;
};

// Owned through std::shared_ptr: the C handle and every reader hold one, so the frames outlive
// whichever is released first. The destructor cancels a running stream and joins its thread.
class Stream {
 public:
  ~Stream();
  const FrameBuffer& buffer() const { return *buf_; }
  Playback& playback() { return playback_; }
  Coords coords() const { return coords_; }
  float buffering_delay_s() const { return req_.buffering_delay_s; }
  void cancel();
  bool wait(float timeout_s);  // true once the receiver thread has finished
  bool receiving() const { return !done_.load(std::memory_order_acquire); }
  StreamStats stats() const;

 private:
  friend class Client;
  Stream(std::shared_ptr<ClientCore> core, std::string text, const coamd_request& req,
         const float* rest_offsets);
  void run();

  std::shared_ptr<ClientCore> core_;
  std::string text_;
  coamd_request req_;
  Coords coords_;
  float rest_[kPosFloats];
  std::unique_ptr<FrameBuffer> buf_;
  Playback playback_;
  struct Rpc;
  std::unique_ptr<Rpc> rpc_;
  std::atomic<bool> done_{false};
  std::atomic<bool> cancel_requested_{false};
  mutable std::mutex mu_;  // guards stats_ and the wait condition (never touched by sample())
  std::condition_variable cv_;
  StreamStats stats_;
  std::thread thread_;
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

 private:
  std::shared_ptr<ClientCore> core_;
  float rest_[kPosFloats];
};

}  // namespace coamd
