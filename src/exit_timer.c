// The process's last resort (polycephaly_ros/ros/native.py, exit_after()): a C thread that
// ends the process with a chosen exit code when a deadline passes. Fast DDS can deadlock while
// a participant is destroyed, in a thread that holds Python's GIL (eProsima/Fast-DDS#6502);
// then no Python code runs again, but this thread, which never takes the GIL, still does.

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static int started = 0;
static int armed = 0;
static int code = 0;
static struct timespec deadline;

static void * watch(void * unused)
{
  (void)unused;
  pthread_mutex_lock(&lock);
  for (;;) {
    if (!armed) {
      pthread_cond_wait(&changed, &lock);
    } else if (pthread_cond_timedwait(&changed, &lock, &deadline) == ETIMEDOUT && armed) {
      static const char said[] =
        "polycephaly_ros: the ROS teardown did not end in time (a Fast DDS deadlock): exiting\n";
      if (write(STDERR_FILENO, said, sizeof(said) - 1) < 0) {
        // nothing more can be done about it
      }
      _exit(code);
    }
  }
  return NULL;
}

// End the process with exit_code once seconds have passed, unless called again first;
// seconds <= 0 disarms. Returns 0, or an errno value when the thread could not start.
int polycephaly_ros_exit_after(double seconds, int exit_code)
{
  int error = 0;
  pthread_mutex_lock(&lock);
  if (!started) {
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &attributes);
    pthread_condattr_destroy(&attributes);
    pthread_t thread;
    error = pthread_create(&thread, NULL, watch, NULL);
    if (error == 0) {
      pthread_detach(thread);
      started = 1;
    }
  }
  if (error == 0) {
    armed = seconds > 0;
    code = exit_code;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    long nanoseconds = deadline.tv_nsec + (long)((seconds - (double)(long)seconds) * 1e9);
    deadline.tv_sec += (time_t)seconds + nanoseconds / 1000000000L;
    deadline.tv_nsec = nanoseconds % 1000000000L;
    pthread_cond_signal(&changed);
  }
  pthread_mutex_unlock(&lock);
  return error;
}
