"""The Gradio page in a real browser: headless Chromium with a fake microphone playing a recording.

Chromium and chromedriver come from Debian (``make setup`` installs them as root); the test is skipped with a
message only when they cannot be found. Screenshots (desktop and phone viewport) go to ``work/screenshots/``.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio")
pytest.importorskip("selenium")

ROOT = Path(__file__).resolve().parents[2]
JFK = ROOT.parent / "shared" / "data" / "speech" / "jfk" / "jfk.16k.wav"
BUNDLED_ASR = ROOT / "models" / "pretrained" / "paraformer-en"
# two rendered test sentences (held-out voices): what the bundled ASR was made for
RECORDED = [ROOT / "recordings" / "sentences" / "00.flac", ROOT / "recordings" / "sentences" / "01.flac"]
SHOTS = ROOT / "work" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _browser_paths() -> tuple[str, str]:
    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        pytest.skip("Chromium/chromedriver not found: `make setup` as root installs Debian's chromium and "
                    "chromium-driver")
    return chrome, driver


def _fake_mic_audio() -> tuple[np.ndarray, int]:
    """The fake microphone's speech (16 kHz mono): rendered sentences with the bundled ASR, else the JFK clip."""
    if (BUNDLED_ASR / "config.yaml").is_file():
        parts = [sf.read(f, dtype="float32")[0] for f in RECORDED]
        gap = np.zeros(16000, dtype=np.float32)
        return np.concatenate([parts[0], gap, parts[1]]), 16000
    speech, sr = sf.read(JFK, dtype="float32")
    return speech, int(sr)


@pytest.fixture(scope="module")
def page(models: Any) -> Iterator[str]:
    from app.policies import PolicyConfig
    from app.speech_session import SpeechConfig, SpeechModels
    from web.gradio_app import CSS, build_app

    port = _free_port()
    if (BUNDLED_ASR / "config.yaml").is_file():  # real captions for the screenshots
        models = SpeechModels(SpeechConfig(policy=PolicyConfig(name="reta", beam=1), asr_model=BUNDLED_ASR))
    demo = build_app(models)
    demo.queue(default_concurrency_limit=None).launch(server_name="127.0.0.1", server_port=port, css=CSS,
                                                      prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}"
    demo.close()


def _driver(tmp_path: Path, width: int, height: int, mobile: bool = False) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chrome, driver = _browser_paths()
    speech, sr = _fake_mic_audio()
    wav = tmp_path / "fake-mic.wav"  # speech then silence, so the utterance ends and its caption turns final
    sf.write(wav, np.concatenate([speech, np.zeros(3 * sr, dtype=np.float32)]), sr, subtype="PCM_16")
    opts = Options()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    if mobile:
        opts.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": width, "height": height,
                                                                           "pixelRatio": 2.0}})
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_microphone_captions_appear_and_become_final(page: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(parents=True, exist_ok=True)
    d = _driver(tmp_path, 1280, 1000)
    try:
        d.get(page)
        wait = WebDriverWait(d, 60)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#mic button.record-button"))).click()
        # a revisable caption first, then a final line once the recording's silence ends the utterance
        wait.until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "#caption p.current, #caption p.final"))
        WebDriverWait(d, 90).until(
            lambda drv: any(p.text.strip() for p in drv.find_elements(By.CSS_SELECTOR, "#caption p.final")))
        finals = [p.text for p in d.find_elements(By.CSS_SELECTOR, "#caption p.final") if p.text.strip()]
        assert finals
        assert "segments" in d.find_element(By.ID, "figures").text
        d.save_screenshot(str(SHOTS / "web-desktop.png"))
    finally:
        d.quit()
    phone = _driver(tmp_path, 390, 844, mobile=True)
    try:
        phone.get(page)
        button = WebDriverWait(phone, 60).until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, "#mic button.record-button")))
        width = phone.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, f"the page scrolls sideways on a phone ({width} px)"
        assert button.is_displayed()
        button.click()  # captions on the phone too, and they must not widen the page
        WebDriverWait(phone, 90).until(
            lambda drv: any(p.text.strip() for p in drv.find_elements(By.CSS_SELECTOR, "#caption p.final")))
        width = phone.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, f"captions make the page scroll sideways on a phone ({width} px)"
        phone.save_screenshot(str(SHOTS / "web-phone.png"))
    finally:
        phone.quit()
