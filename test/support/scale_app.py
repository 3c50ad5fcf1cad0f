"""An application of N process heads that reports on itself: python scale_app.py N [options].

Options: ``--ros``, ``--parallel`` (parallel_start), ``--discovery ADDRESS`` (discovery_server),
``--services`` (the heads' class sets node_services). Once every head was born (and, with ROS,
main's node sees every head's node), it prints one line ``report <json>`` and stops: the fork
server's pid, this process's sys.path, polycephaly_ros file and environment, each head's view
of the same (answered in its own process), and with ROS the service names of main's node and
of the first head's node, and the local addresses of the discovery server it started.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from multiprocessing import forkserver

import polycephaly_ros
from polycephaly_ros import Application, Process, message_filter

WATCHED = ('PYTHONSAFEPATH', 'PYTHONPATH', 'POLYCEPHALY_ROS_FORK_SERVER_ENV',
           'ROS_DISCOVERY_SERVER')


def view() -> dict:
    """Return what a process imports from and the environment variables we look at."""
    return {'file': polycephaly_ros.__file__, 'pid': os.getpid(),
            'environment': {name: os.environ.get(name) for name in WATCHED}}


def discovery_server_sockets() -> dict:
    """Return pid -> the local UDP addresses of the discovery servers this process started."""
    servers = {}
    for pid in os.listdir('/proc'):
        try:
            stat = open(f'/proc/{pid}/stat').read()
        except OSError:
            continue
        if '(fast-discovery-' in stat and int(stat.rsplit(')', 1)[1].split()[1]) == os.getpid():
            lines = subprocess.run(['ss', '-Hulnp'], capture_output=True, text=True).stdout
            servers[pid] = [line.split()[3] for line in lines.splitlines() if f'pid={pid},' in line]
    return servers


class Reporter(Process):
    """Answer 'view' with its process's view."""

    @message_filter(subject='view')
    def on_view(self, envelope: dict) -> None:
        self.reply(envelope, view())


class ServicedReporter(Reporter):
    """A Reporter whose node offers parameter and type description services."""

    node_services = True


class Main(Process):
    """Collect the report once every head runs, print it, stop."""

    def life(self) -> None:
        heads = [h['name'] for h in self.application.status()]
        node = self.runtime.node
        if node is not None:
            deadline = time.monotonic() + 60
            while len(node.get_node_names()) < len(heads) + 1 and time.monotonic() < deadline:
                self.mailman(wait=0.05)
        report = {'fork_server': forkserver._forkserver._forkserver_pid, 'main': view(),
                  'heads': [self.wait_for_reply(self.send(h, 'view'), 20)['body'] for h in heads]}
        if node is not None:
            names = dict(node.get_service_names_and_types_by_node(node.get_name(), '/'))
            report['main_services'] = sorted(names)
            names = dict(node.get_service_names_and_types_by_node(heads[0], '/'))
            report['head_services'] = sorted(names)
        report['discovery_server'] = discovery_server_sockets()
        print('report ' + json.dumps(report), flush=True)
        self.die()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('count', type=int)
    parser.add_argument('--ros', action='store_true')
    parser.add_argument('--parallel', action='store_true')
    parser.add_argument('--services', action='store_true')
    parser.add_argument('--discovery')
    options = parser.parse_args()

    class Scale(Application):
        def build(self) -> None:
            for i in range(options.count):
                self.add_process(ServicedReporter if options.services else Reporter,
                                 name=f'h{i}', mode='process')

    app = Scale(Main, ros=options.ros, parallel_start=options.parallel,
                discovery_server=options.discovery, threads_timeout=20)
    code = app.run()
    print(f'exit {code}', flush=True)
    return code


if __name__ == '__main__':
    sys.exit(main())
