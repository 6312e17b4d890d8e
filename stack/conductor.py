"""The Conductor OSS server: its boot jar from Maven Central, a JDK to run it, its properties."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .config import CACHE_DIR, CONDUCTOR_VERSION, PORTS, STACK_DIR

GROUP, ARTIFACT = "org.conductoross", "conductor-server"
JAR_DIR = CACHE_DIR / "conductor"


def minimum_java(version: str) -> int:
    """3.21.22 is the last release built for Java 17; later ones need 21."""
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:3])
    return 17 if parts <= (3, 21, 22) else 21


def jar_path(version: str = CONDUCTOR_VERSION) -> Path:
    """The cached boot jar, fetched with Maven on first use."""
    jar = JAR_DIR / f"{ARTIFACT}-{version}-boot.jar"
    if jar.exists():
        return jar
    JAR_DIR.mkdir(parents=True, exist_ok=True)
    print(f"fetching {GROUP}:{ARTIFACT}:{version}:jar:boot from Maven Central into {JAR_DIR}")
    result = subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
            f"-Dartifact={GROUP}:{ARTIFACT}:{version}:jar:boot",
            f"-DoutputDirectory={JAR_DIR}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not jar.exists():
        raise SystemExit(
            f"could not fetch the Conductor server jar {version} with Maven:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return jar


def _java_major(java: Path) -> int:
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else 0


def find_java(minimum: int) -> Path:
    """A java of at least `minimum`: JAVA_HOME first, then the JDKs under /usr/lib/jvm."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(jvm.glob("*/bin/java"), reverse=True)
    candidates.append(Path("/usr/bin/java"))
    best = None
    for java in candidates:
        major = _java_major(java) if java.exists() else 0
        if major >= minimum and (best is None or major > best[0]):
            best = (major, java)
    if best is None:
        raise SystemExit(
            f"Conductor {CONDUCTOR_VERSION} needs Java {minimum}+; none found in "
            "JAVA_HOME or /usr/lib/jvm (install a JDK, e.g. openjdk-21-jdk)"
        )
    return best[1]


def write_properties(db_password: str) -> Path:
    """The properties file passed with -DCONDUCTOR_CONFIG_FILE (overrides the jar's defaults)."""
    path = STACK_DIR / "conductor" / "conductor.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"server.port={PORTS.conductor}\n"
        "server.address=127.0.0.1\n"
        "conductor.db.type=postgres\n"
        "conductor.queue.type=postgres\n"
        "conductor.indexing.enabled=true\n"
        "conductor.indexing.type=postgres\n"
        "conductor.elasticsearch.version=0\n"
        f"spring.datasource.url=jdbc:postgresql://127.0.0.1:{PORTS.postgres}/conductor\n"
        "spring.datasource.username=conductor\n"
        f"spring.datasource.password={db_password}\n"
        "spring.datasource.hikari.maximum-pool-size=20\n"
        "conductor.app.ownerEmailMandatory=false\n"
        # One decider pass or task update per workflow at a time. 3.32.1 has both by default
        # (the jar's own application.properties); stated so that no release or file drops
        # them. local_only locks within one JVM: a cluster of servers needs a shared lock
        # (conductor.workflow-execution-lock.type=postgres or redis).
        "conductor.app.workflowExecutionLockEnabled=true\n"
        "conductor.workflow-execution-lock.type=local_only\n"
        "loadSample=false\n"
        "conductor.integrations.ai.enabled=false\n"
        "conductor.enable.ui.serving=false\n"
        "management.endpoints.web.exposure.include=health,info,prometheus\n"
    )
    path.chmod(0o600)
    return path


def server_command(db_password: str) -> list[str]:
    """The foreground java command the process manager runs."""
    java = find_java(minimum_java(CONDUCTOR_VERSION))
    props = write_properties(db_password)
    return [
        str(java),
        "-Xms256m",
        "-Xmx1536m",
        "-XX:+UseG1GC",
        # queue_message.deliver_on is written in the JVM's zone without one: the queue check
        # (batchcore.conductor_queue) reads it in UTC, its role's TimeZone.
        "-Duser.timezone=UTC",
        f"-DCONDUCTOR_CONFIG_FILE={props}",
        "-jar",
        str(jar_path()),
    ]
