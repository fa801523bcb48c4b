"""Tenant factories and a real ASGI server on a free port, shared by every test module
(a module, not conftest.py, so tests can import it unambiguously)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Literal

from accounts.models import Group, Membership, Organisation, Role, User

PASSWORD = "correct horse battery staple 42"


@dataclass
class Tenant:
    organisation: Organisation
    owner: User
    admin: User
    member: User


def make_user(email: str, *, verified: bool = True) -> User:
    from allauth.account.models import EmailAddress

    user = User.objects.create_user(email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=verified, primary=True)
    return user


def make_group(slug: str = "default") -> Group:
    group, _ = Group.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    return group


def make_tenant(slug: str, *, groups: tuple[str, ...] = ("default",)) -> Tenant:
    group_objs = [make_group(g) for g in groups]
    org = Organisation.objects.create(slug=slug, name=slug.title(), default_group=group_objs[0])
    org.allowed_groups.set(group_objs)
    owner = make_user(f"owner@{slug}.test")
    admin = make_user(f"admin@{slug}.test")
    member = make_user(f"member@{slug}.test")
    Membership.objects.create(user=owner, organisation=org, role=Role.OWNER)
    Membership.objects.create(user=admin, organisation=org, role=Role.ADMIN)
    Membership.objects.create(user=member, organisation=org, role=Role.MEMBER)
    return Tenant(organisation=org, owner=owner, admin=admin, member=member)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


class ServedApp:
    """An ASGI app served by uvicorn in a thread on an already-listening socket, so
    clients may connect the moment the fixture returns (no start-up wait)."""

    def __init__(self, app, *, lifespan: Literal["auto", "on", "off"] = "on") -> None:
        import uvicorn

        self.sock = _free_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan=lifespan,
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
