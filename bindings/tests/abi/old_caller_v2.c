/* A caller built against the version-2 header (include path abi/v2). C, as an engine plugin or
 * FFI would be. */
#include <string.h>

#include "coamd/coamd_client.h"
#include "old_caller.h"

#if COAMD_ABI_VERSION != 2
#error "old_caller_v2.c must be compiled against the version-2 header"
#endif

void old_caller_v2(const char* target, const char* text, float duration_s, int set_full_size,
                   old_caller_report* report) {
  struct {
    coamd_request r;
    unsigned char canary[16];
  } req;
  struct {
    coamd_stream_info i;
    unsigned char canary[32];
  } info;
  coamd_client_options opts;
  coamd_client* client = NULL;
  coamd_stream* stream = NULL;
  coamd_sample_info sample;
  float pos[63];
  size_t k;

  memset(report, 0, sizeof(*report));
  report->abi_version = coamd_abi_version();
  report->header_abi_version = COAMD_ABI_VERSION;
  coamd_client_options_defaults(&opts);
  opts.connect_timeout_s = 10.f;
  report->rc_create = coamd_client_create(target, &opts, NULL, NULL, &client);
  if (report->rc_create != COAMD_OK) goto done;

  /* Garbage where the stack would have it: the version-2 struct's 4 bytes of tail padding are
   * never written by this caller (version 4 put text_conditioning there). */
  memset(&req, 0x5A, sizeof(req));
  coamd_request_defaults(&req.r);
  report->request_struct_size = req.r.struct_size;
  report->request_canary_intact = 1;
  for (k = 0; k < sizeof(req.canary); ++k) report->request_canary_intact &= req.canary[k] == 0x5A;
  req.r.duration_s = duration_s;
  req.r.seed = 5;
  req.r.buffering_delay_s = 0.f;
  req.r.cleanup = COAMD_CLEANUP_OFF;
  req.r.temperature = 0.7f;
  if (set_full_size) req.r.struct_size = (int32_t)sizeof(coamd_request);
  report->rc_start = coamd_stream_start(client, text, &req.r, &stream);
  if (report->rc_start != COAMD_OK) goto done;
  report->rc_wait = coamd_stream_wait(stream, 20.f);

  memset(&info, 0x5A, sizeof(info));
  info.i.struct_size = (int32_t)sizeof(coamd_stream_info);
  report->info_struct_size = (int)sizeof(coamd_stream_info);
  report->rc_info = coamd_stream_info_get(stream, &info.i);
  report->info_canary_intact = 1;
  for (k = 0; k < sizeof(info.canary); ++k) report->info_canary_intact &= info.canary[k] == 0x5A;
  report->frames_received = info.i.frames_received;
  report->total_frames = info.i.total_frames;
  report->has_summary = info.i.has_summary;
  coamd_stream_sample(stream, 1000.0, &sample, pos, NULL, NULL); /* starts playback */
  report->rc_sample = coamd_stream_sample(stream, 1010.0, &sample, pos, NULL, NULL);
  report->sample_state = sample.state;

done:
  if (report->rc_create != COAMD_OK || report->rc_start != COAMD_OK || report->rc_info != COAMD_OK) {
    strncpy(report->error, coamd_last_error(), sizeof(report->error) - 1);
  } else if (stream) {
    coamd_stream_error(stream, report->error, (int32_t)sizeof(report->error));
  }
  coamd_stream_destroy(stream);
  coamd_client_destroy(client);
}
