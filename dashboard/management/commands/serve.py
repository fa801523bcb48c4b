"""python manage.py serve: the console, admin and API served by uvicorn (one worker
process per CPU with Redis, one without), plus the demo fake upstream (unless
--no-demo) so the demo models answer."""

import os
import subprocess
import sys
from urllib.parse import urlparse

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Serve Tollgate with uvicorn."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="uvicorn worker processes (default: WEB_CONCURRENCY, else one per CPU with "
            "Redis, one without)",
        )
        parser.add_argument("--no-demo", action="store_true", help="do not start the fake upstream")
        parser.add_argument(
            "--celery",
            action="store_true",
            help="with Redis, also start a Celery worker with beat (make run)",
        )

    def handle(self, *args, host, port, workers, no_demo, celery=False, **options):
        workers = self._workers(workers)
        demo = None
        if not no_demo:
            url = urlparse(settings.TOLLGATE_DEMO_UPSTREAM_URL)
            demo = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "fakeupstream",
                    "--host",
                    url.hostname or "127.0.0.1",
                    "--port",
                    str(url.port or 8001),
                    "--demo",
                ],
                cwd=settings.BASE_DIR,
            )
            self.stdout.write(f"demo upstream on {settings.TOLLGATE_DEMO_UPSTREAM_URL}")
        usage_worker = None
        if settings.REDIS_URL and settings.TOLLGATE_USAGE_FLUSHER == "inprocess":
            # A dedicated process writes usage to the database, so the web workers'
            # event loops never share their GIL with those writes.
            usage_worker = subprocess.Popen(
                [sys.executable, "manage.py", "usage_worker"], cwd=settings.BASE_DIR
            )
            os.environ["TOLLGATE_USAGE_FLUSHER"] = "external"  # web workers spawned...
            settings.TOLLGATE_USAGE_FLUSHER = "external"  # ...and one served in process
        celery_worker = None
        if settings.REDIS_URL and celery:
            celery_worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-B",
                    "--schedule",
                    str(settings.VAR_DIR / "celerybeat-schedule"),
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=settings.BASE_DIR,
            )
            self.stdout.write("Celery worker with beat started (roll-ups, reconciliation)")
        beat = None
        if not settings.REDIS_URL:
            # No broker, so no Celery beat: run the beat schedule in-process (roll-ups).
            from config.beat import EmbeddedBeat

            beat = EmbeddedBeat()
            beat.start()
            self.stdout.write("scheduled tasks run in-process (no REDIS_URL)")
        self.stdout.write(
            self.style.SUCCESS(
                f"Tollgate on http://{host}:{port}/  (admin /admin/, API docs /api/docs, "
                f"OpenAI base URL http://{host}:{port}/v1, Anthropic base URL http://{host}:{port})"
            )
        )
        try:
            uvicorn.run(
                "config.asgi:application",
                host=host,
                port=port,
                workers=workers,
                loop="uvloop",
                http="httptools",
                lifespan="on",
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=10,
            )
        finally:
            if celery_worker is not None:
                celery_worker.terminate()
                celery_worker.wait(timeout=30)
            if usage_worker is not None:
                usage_worker.terminate()  # it drains what is queued before exiting
                usage_worker.wait(timeout=30)
            if beat is not None:
                beat.stop()
            if demo is not None:
                demo.terminate()
                demo.wait(timeout=10)

    def _workers(self, asked: int | None) -> int:
        """Several event loops need state they can share: credit holds, rests and the
        usage queue live in Redis. Without it, one process keeps them in memory."""
        if asked is None:
            env = os.environ.get("WEB_CONCURRENCY")
            asked = int(env) if env else (os.cpu_count() or 1) if settings.REDIS_URL else 1
        if asked > 1 and not settings.REDIS_URL:
            raise CommandError(
                f"--workers {asked} needs REDIS_URL: without Redis, credit "
                "holds and the usage queue live in one process's memory."
            )
        return max(asked, 1)
