/* Callers compiled against the version-1 and version-2 headers (abi/v1, abi/v2: verbatim copies
 * of coamd_client.h as released), linked with the current library: what an old binary does. */
#ifndef COAMD_TEST_OLD_CALLER_H
#define COAMD_TEST_OLD_CALLER_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct old_caller_report {
  int abi_version;          /* coamd_abi_version() as the old caller sees it */
  int header_abi_version;   /* COAMD_ABI_VERSION of the header it was built against */
  int rc_create, rc_start, rc_wait, rc_info, rc_sample;
  int request_struct_size;  /* struct_size after the exported coamd_request_defaults */
  int request_canary_intact;  /* the bytes after the caller's coamd_request were not written */
  int info_canary_intact;     /* ... nor those after its coamd_stream_info */
  int info_struct_size;       /* the caller's sizeof(coamd_stream_info) */
  unsigned frames_received, total_frames;
  int has_summary;
  int sample_state;
  char error[512];
} old_caller_report;

/* Connects to target, streams `text` for duration_s seconds (version 1: order LEFT_TO_RIGHT;
 * version 2: cleanup OFF and temperature 0.7), waits for the end and fills report. v2 with
 * set_full_size sets struct_size = sizeof(coamd_request) after coamd_request_defaults. */
void old_caller_v1(const char* target, const char* text, float duration_s, old_caller_report* report);
void old_caller_v2(const char* target, const char* text, float duration_s, int set_full_size,
                   old_caller_report* report);

#ifdef __cplusplus
}
#endif
#endif
