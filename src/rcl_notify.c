// The native half of polycephaly_ros/ros/native.py: a callback for rcl's
// rcl_subscription_set_on_new_message_callback() and rcl_event_set_callback() that adds the
// number of new messages (or events) to an eventfd, whose descriptor is the user data.
// It runs in a middleware thread and takes no lock: a head's thread watches the eventfd
// with epoll and takes the messages itself, so no Python (and no GIL) is involved here.

#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>

void polycephaly_ros_notify(const void * user_data, size_t number_of_events)
{
  eventfd_write((int)(intptr_t)user_data, number_of_events ? (eventfd_t)number_of_events : 1);
}
