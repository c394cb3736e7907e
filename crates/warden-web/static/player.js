// Warden's terminal player. The server has already run the recording through a terminal
// emulator: each frame is [ms, [[row, html], ...]], the rows that changed at that moment, with
// the host's text escaped. This only swaps rows in on time.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const root = document.querySelector("[data-frames]");
  if (!root) return;
  const screen = document.getElementById("screen");
  const play = document.getElementById("play");
  const speed = document.getElementById("speed");
  const seek = document.getElementById("seek");
  const clock = document.getElementById("clock");
  const status = document.getElementById("player-status");
  const say = (message) => { status.textContent = message; };

  let cast;
  try {
    const response = await fetch(root.dataset.frames, { credentials: "same-origin" });
    cast = await response.json();
    if (!response.ok) throw new Error(cast.error || `the server answered ${response.status}`);
  } catch (error) {
    say(`This recording cannot be played: ${error.message}`);
    root.dataset.state = "error";
    return;
  }
  const lines = [];
  for (let i = 0; i < cast.rows; i++) {
    const line = document.createElement("div");
    line.className = "line";
    screen.appendChild(line);
    lines.push(line);
  }
  // Long pauses are shortened to a second, as asciinema's idle limit does.
  const IDLE = 1000;
  const times = [];
  let shifted = 0;
  let previous = 0;
  for (const [ms] of cast.frames) {
    shifted += Math.min(ms - previous, IDLE);
    previous = ms;
    times.push(shifted);
  }
  const total = times.length ? times[times.length - 1] : 0;
  let next = 0;       // the next frame to show
  let position = 0;   // ms into the (shortened) recording
  let timer = null;
  let started = 0;

  const format = (ms) => {
    const s = Math.floor(ms / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };
  const show = (upTo) => {
    while (next < cast.frames.length && times[next] <= upTo) {
      for (const [row, html] of cast.frames[next][1]) {
        if (lines[row]) lines[row].innerHTML = html;
      }
      next++;
    }
    position = upTo;
    clock.textContent = `${format(position)} / ${format(total)}`;
    seek.value = total ? Math.round((position / total) * 1000) : 1000;
    root.dataset.frame = String(next);
  };
  const reset = () => {
    for (const line of lines) line.innerHTML = "";
    next = 0;
  };
  const pause = () => {
    if (timer) cancelAnimationFrame(timer);
    timer = null;
    play.textContent = "Play";
  };
  const tick = (now) => {
    const at = position + (now - started) * Number(speed.value);
    started = now;
    show(Math.min(at, total));
    if (position >= total) {
      pause();
      root.dataset.state = "ended";
      say("End of recording.");
      return;
    }
    timer = requestAnimationFrame(tick);
  };
  play.addEventListener("click", () => {
    if (timer) return pause();
    if (position >= total) { reset(); position = 0; }
    root.dataset.state = "playing";
    say("");
    play.textContent = "Pause";
    started = performance.now();
    timer = requestAnimationFrame(tick);
  });
  seek.addEventListener("input", () => {
    const target = (Number(seek.value) / 1000) * total;
    if (target < position) reset();
    show(target);
  });
  show(0);
  root.dataset.state = "ready";
});
