"""The words of the demo report, English and Korean. Placeholders in braces are filled with the
numbers measured in the run (see ``report.py``); no number is written here."""

from __future__ import annotations

__all__ = ["TEXT"]

_EN = {
    "title": "# ResNet, measured: what skip connections do, shown on real data",
    "intro_keys": ("command", "dataset", "device", "wall_time", "cpu_seconds", "date"),
    "intro": (
        "This report was written by `{command}` on {date}. Every number and picture below was "
        "measured in that run, on **{dataset}**, on device `{device}`; the whole run took "
        "**{wall_time}** of wall time ({cpu_seconds} s of CPU time over all threads; on a shared "
        "machine the wall time also depends on what else runs). Short runs are noisy: read "
        "the numbers as what this run saw, not as the paper's final accuracies."
    ),
    "idea_title": "## The idea in one paragraph",
    "idea_text": (
        "A neural network for images is a stack of layers; each layer transforms the picture a "
        "little and hands the result to the next. One would expect a deeper stack to do at "
        "least as well as a shallower one: the extra layers could simply pass their input on "
        "unchanged. In practice, deep *plain* stacks train **worse**, even on the very images "
        "they are trained on (He et al. 2015, arXiv 1512.03385). A **residual block** fixes "
        "this by adding its input back to its output: `Y = F(X) + X`. The layers inside only "
        "have to learn the *change* `F(X)`; doing nothing (`F = 0`) is easy. Think of an "
        "**escalator beside the stairs**: the signal, and the error signal that trains the "
        "layers, can always ride the shortcut past a block instead of climbing through it."
    ),
    "fig_block": "one residual block",
    "fig_gradflow": "gradient norm by depth",
    "fig_degradation": "training and test error of plain and residual networks",
    "fig_lesion": "accuracy after deleting one block",
    "fig_landscape": "loss landscape",
    "block_title": "## 1. One residual block: Y = F(X) + X",
    "block_text": (
        "The smallest example: `ResidualBlock(3)` has two 3x3 convolutions (the branch `F`) "
        "and a shortcut that adds the input back. Because both convolutions keep the image "
        "size and the number of channels, `F(X)` and `X` have the same shape and can be "
        "added. We measure how much of the block's output (before its final ReLU) is the "
        "input itself: the **identity fraction** `Var(X) / (Var(X) + Var(F(X)))`, which is 1 "
        "when the branch adds nothing and 0 when the branch drowns the input."
    ),
    "block_numbers": (
        "Measured: input shape {shape_in}, output shape {shape_out}; Var(X) = {var_x:.4f}, "
        "Var(F(X)) = {var_f:.4f}, correlation of X and F(X) = {corr:+.3f}. **Identity "
        "fraction = {fraction:.3f}**: in a freshly initialised block most of what comes out is "
        "what went in; the branch adds a change {change:.0%} the size of the input (ratio of "
        "L2 norms). Training only has to learn what to add."
    ),
    "gradflow_title": "## 2. Does the training signal reach the first layer?",
    "gradflow_text": (
        "A network learns by sending an error signal (the gradient) backwards from the last "
        "layer to the first. In a plain stack the signal is multiplied by every layer on the "
        "way and can shrink to nothing (*vanishing gradients*) or blow up. We take one real "
        "training batch and measure the size (L2 norm) of the gradient of every convolution "
        "and of the classifier, from the input side (left) to the output (right). Two numbers "
        "summarise each network: **first/last**, the gradient of the first layer divided by "
        "that of the last (1 = the first layer gets as much signal as the last), and "
        "**spread**, how many powers of ten lie between the best- and the worst-fed "
        "convolution (0 = all equal)."
    ),
    "gradflow_setup": (
        "Setup: depth {depth}, batch of {batch_size} {dataset} images, at initialization and "
        "after {steps} SGD steps (lr {lr}, momentum {momentum}) on the following batches."
    ),
    "gradflow_header": (
        "network",
        "weights",
        "first-layer norm",
        "last-layer norm",
        "first/last (init)",
        "spread, decades (init)",
        "first/last (after)",
        "spread, decades (after)",
    ),
    "gradflow_finding": (
        "In this run the most even gradient at initialization is that of **{even}** (spread "
        "{even_spread:.2f} decades) and the least even that of **{uneven}** ({uneven_spread:.2f} "
        "decades). Batch normalization (BN) rescales every layer, which is why the paper could "
        "train deep plain nets at all; the shortcut gives the gradient a direct path around "
        "every block (dY/dX = dF/dX + 1)."
    ),
    "gradflow_diverged": (
        "Diverged after {steps} steps (the gradient became infinite or NaN): {names}. Without "
        "BN nothing stops the sum `F(X) + X` from growing block after block, so the plain "
        "initialisation of a deep ResNet without BN is unstable (its activations and "
        "gradients grow with the number of blocks). Compare the networks with BN in the table."
    ),
    "degr_title": "## 3. The degradation problem: deeper plain nets train worse",
    "degr_text": (
        "We train a shallow and a deep network of each kind with exactly the same recipe and "
        "budget. The plain and the residual network of one depth have the *same layers and "
        "the same number of parameters*; the only difference is the `+ X`. Left: plain "
        "networks; right: ResNets. **Thin lines are the training error per iteration, bold lines "
        "with dots the test error after each epoch** (the layout of Figure 6 of the paper; "
        "dotted lines mark the epochs). If the deeper plain network has the higher "
        "*training* error, the problem is not overfitting: the deeper net is simply harder to "
        "optimise."
    ),
    "degr_setup": (
        "Recipe: {dataset}, train subset {train_subset}, test subset {test_subset}, {epochs} "
        "epochs, batch {batch_size}, SGD lr {lr} ({schedule}, {warmup_epochs} warmup epochs), "
        "weight decay {weight_decay}, "
        "augmentation {augment}, {seeds} seed(s) (± is the spread over seeds). Training error "
        "is counted on the images each net trains on, as it trains (the thin lines)."
    ),
    "degr_plain_yes": (
        "**Plain networks: yes, the degradation appears.** plain-{deep} ends with a higher "
        "training error than plain-{shallow} ({plain_d} vs {plain_s}, {plain_gap:+.2f} "
        "points)."
    ),
    "degr_plain_no": (
        "**Plain networks: in this run the degradation did not appear.** plain-{deep} ended "
        "with a training error of {plain_d} vs {plain_s} for plain-{shallow} "
        "({plain_gap:+.2f} points). A short budget can hide or show it by chance; run "
        "`resnet demo --full` for the longer version."
    ),
    "degr_spread": (
        "**Beyond the noise?** Over {seeds} seeds the spread (standard deviation) of the final "
        "training error is {plain_spread:.2f} points for plain-{shallow}/{deep} and "
        "{res_spread:.2f} for resnet-{shallow}/{deep}. The plain gap ({plain_gap:+.2f} points) "
        "is {plain_beyond} twice its spread; the ResNet gain ({res_gain:+.2f} points) is "
        "{res_beyond} twice its spread."
    ),
    "degr_one_seed": (
        "One seed: there is no seed-to-seed spread to compare the gaps with; `resnet demo "
        "--full` runs two."
    ),
    "beyond": "beyond",
    "within": "within",
    "degr_middle": (
        "**The middle depths** (final training error): plain {plain_mid}; ResNets {res_mid}."
    ),
    "degr_same_depth": (
        "**Same depth, with and without shortcuts:** at depth {deep} the ResNet ends at {res_d} "
        "training error, the plain net with the same layers and parameters at {plain_d} "
        "({same_gap:+.2f} points)."
    ),
    "degr_res_beats": (
        "**ResNets: the deeper net beats the shallower one.** resnet-{deep} ends at {res_d} "
        "training error vs {res_s} for resnet-{shallow} ({res_gap:+.2f} points)."
    ),
    "degr_res_matches": (
        "**ResNets: the deeper net matches the shallower one** (within {tol:.1f} points): "
        "resnet-{deep} {res_d} vs resnet-{shallow} {res_s} training error ({res_gap:+.2f} "
        "points)."
    ),
    "degr_res_no": (
        "**ResNets: in this run the deeper net did not match the shallower one**: resnet-{deep} "
        "{res_d} vs resnet-{shallow} {res_s} training error ({res_gap:+.2f} points, more than "
        "the {tol:.1f}-point tolerance). This short budget does not show it; the paper "
        "compares the nets after 64,000 steps, far more than here. `resnet demo --full` "
        "trains longer."
    ),
    "lesion_title": "## 4. Delete a block: ResNets degrade gracefully, plain nets collapse",
    "lesion_text": (
        "Veit et al. (2016, arXiv 1605.06431) deleted single blocks from trained networks. In a "
        "ResNet, deleting a block means replacing it by the identity: the escalator stays, "
        "only one flight of stairs is gone. A ResNet behaves like an ensemble of many paths of "
        "different lengths, so losing one block costs little. A plain network has only one "
        "path; cutting any layer out breaks it. We delete each block of the deep networks "
        "trained above, one at a time, and measure test accuracy. Blocks that change the "
        "image size and channel count (the first block of a stage) cannot be replaced by the "
        "identity and are **skipped** (kept) in both networks."
    ),
    "lesion_setup": "Measured on {samples} test images.",
    "lesion_header": (
        "network",
        "accuracy, nothing deleted",
        "mean after deleting one block",
        "worst after deleting one block",
        "blocks skipped",
    ),
    "land_title": "## 5. The loss landscape: smooth with shortcuts, rugged without",
    "land_text": (
        "Li et al. (2018, arXiv 1712.09913) drew the loss around a trained network along "
        "random directions, each rescaled filter by filter to the size of the weights (so "
        "that networks with differently sized weights can be compared). Deep plain nets show "
        "a chaotic, sharp landscape; ResNets a smooth bowl that is easy to descend."
    ),
    "land_setup": (
        "Measured on {samples} test images, steps up to {span} along each direction; BN and "
        "bias directions are zero, as in the paper. 'Rise at the edge' is the mean loss at "
        "the two ends of the 1D curve minus the loss at the trained weights."
    ),
    "land_header": ("network", "loss at the trained weights", "rise at the edge (1D)"),
    "summary_title": "## All measured numbers of this run",
    "sum_block": "block: identity fraction",
    "sum_gradflow": "gradflow {label}: first/last grad norm (init, after)",
    "sum_degr": "{label}: final train / test error",
    "sum_lesion": "lesion {label}: full / mean / worst after one deletion",
    "sum_land": "landscape {label}: loss rise at the edge",
    "summary_header": ("measurement", "value"),
    "reproduce": (
        "## Reproduce\n\n`{command}` runs this again; `resnet exp NAME --help` runs one "
        "experiment (NAME: block, gradflow, degradation, landscape, lesion) with more options."
    ),
}

_KO = {
    "title": "# 측정으로 보는 ResNet: 실제 데이터로 확인한 스킵 연결의 효과",
    "intro_keys": _EN["intro_keys"],
    "intro": (
        "이 보고서는 {date}에 `{command}` 명령이 작성했습니다. 아래의 모든 숫자와 그림은 그 "
        "실행에서 **{dataset}** 데이터셋으로, `{device}` 장치에서 측정한 것입니다. 전체 실행 "
        "시간은 **{wall_time}**입니다(모든 스레드의 CPU 시간 {cpu_seconds}초; 공유 머신에서는 "
        "다른 작업에 따라 실행 시간이 달라집니다). 짧은 실행은 잡음이 크므로, 논문의 최종 "
        "정확도가 아니라 이번 실행에서 관찰된 값으로 읽어 주세요."
    ),
    "idea_title": "## 한 문단으로 보는 핵심 아이디어",
    "idea_text": (
        "이미지를 다루는 신경망은 층(layer)을 쌓은 것입니다. 각 층은 그림을 조금씩 바꾸어 다음 "
        "층에 넘깁니다. 층을 더 쌓으면 적어도 얕은 망만큼은 잘해야 할 것 같습니다. 추가된 층이 "
        "입력을 그대로 넘기기만 하면 되니까요. 그런데 실제로는 깊은 *평범한(plain)* 망이 학습에 "
        "쓴 이미지에서조차 **더 나쁜** 성능을 보입니다(He et al. 2015, arXiv 1512.03385). "
        "**잔차 블록(residual block)**은 입력을 출력에 다시 더해 이 문제를 해결합니다: "
        "`Y = F(X) + X`. 블록 안의 층은 *변화량* `F(X)`만 배우면 되고, 아무것도 하지 않는 것"
        "(`F = 0`)은 쉽습니다. **계단 옆의 에스컬레이터**를 떠올려 보세요. 신호와, 층을 학습시키는 "
        "오차 신호는 블록을 힘들게 올라가는 대신 언제든 지름길을 타고 지나갈 수 있습니다."
    ),
    "fig_block": "잔차 블록 하나",
    "fig_gradflow": "깊이에 따른 그래디언트 크기",
    "fig_degradation": "평범한 망과 잔차 망의 학습 오차와 테스트 오차",
    "fig_lesion": "블록 하나를 지운 뒤의 정확도",
    "fig_landscape": "손실 지형",
    "block_title": "## 1. 잔차 블록 하나: Y = F(X) + X",
    "block_text": (
        "가장 작은 예: `ResidualBlock(3)`은 3x3 합성곱 두 개(가지 `F`)와 입력을 다시 더하는 "
        "지름길로 이루어집니다. 두 합성곱 모두 이미지 크기와 채널 수를 유지하므로 `F(X)`와 `X`는 "
        "모양이 같아 더할 수 있습니다. 블록 출력(마지막 ReLU 이전) 중 입력 자체가 차지하는 몫을 "
        "**항등 비율** `Var(X) / (Var(X) + Var(F(X)))`로 잽니다. 가지가 아무것도 더하지 않으면 "
        "1, 가지가 입력을 압도하면 0입니다."
    ),
    "block_numbers": (
        "측정값: 입력 모양 {shape_in}, 출력 모양 {shape_out}; Var(X) = {var_x:.4f}, "
        "Var(F(X)) = {var_f:.4f}, X와 F(X)의 상관계수 = {corr:+.3f}. **항등 비율 = "
        "{fraction:.3f}**: 갓 초기화된 블록에서 나오는 것의 대부분은 들어간 것 그대로입니다. "
        "가지가 더하는 변화는 입력 크기의 {change:.0%}입니다(L2 노름의 비). 학습은 무엇을 더할지만 "
        "배우면 됩니다."
    ),
    "gradflow_title": "## 2. 학습 신호가 첫 번째 층까지 도달하는가?",
    "gradflow_text": (
        "신경망은 오차 신호(그래디언트)를 마지막 층에서 첫 층으로 거꾸로 보내며 배웁니다. 평범한 "
        "망에서는 이 신호가 지나가는 모든 층에서 곱해지므로 거의 사라지거나(*그래디언트 소실*) "
        "폭발할 수 있습니다. 실제 학습 배치 하나로 모든 합성곱과 분류기의 그래디언트 크기(L2 "
        "노름)를 입력 쪽(왼쪽)부터 출력 쪽(오른쪽)까지 잽니다. 망마다 두 숫자로 요약합니다: "
        "**첫/끝** 비율은 첫 층의 그래디언트를 마지막 층의 그래디언트로 나눈 값(1이면 첫 층도 "
        "마지막 층만큼 신호를 받음)이고, **퍼짐**은 가장 많이 받는 합성곱과 가장 적게 받는 "
        "합성곱 사이가 10의 몇 제곱만큼 차이 나는지(0이면 모두 같음)입니다."
    ),
    "gradflow_setup": (
        "설정: 깊이 {depth}, {dataset} 이미지 {batch_size}장짜리 배치, 초기화 직후와 이어지는 "
        "배치로 SGD {steps}스텝(lr {lr}, 모멘텀 {momentum}) 뒤."
    ),
    "gradflow_header": (
        "망",
        "가중치 수",
        "첫 층 노름",
        "마지막 층 노름",
        "첫/끝 (초기)",
        "퍼짐, 자릿수 (초기)",
        "첫/끝 (학습 후)",
        "퍼짐, 자릿수 (학습 후)",
    ),
    "gradflow_finding": (
        "이번 실행에서 초기화 시 그래디언트가 가장 고른 망은 **{even}**(퍼짐 {even_spread:.2f} "
        "자릿수), 가장 고르지 않은 망은 **{uneven}**({uneven_spread:.2f} 자릿수)입니다. 배치 "
        "정규화(BN)는 층마다 크기를 다시 맞춰 주기 때문에 논문에서도 깊은 평범한 망을 학습시킬 수 "
        "있었습니다. 지름길은 그래디언트가 모든 블록을 우회하는 직통 경로를 줍니다"
        "(dY/dX = dF/dX + 1)."
    ),
    "gradflow_diverged": (
        "{steps}스텝 뒤 발산한 망(그래디언트가 무한대 또는 NaN): {names}. BN이 없으면 "
        "`F(X) + X`의 합이 블록마다 커지는 것을 막을 장치가 없어, BN 없는 깊은 ResNet의 기본 "
        "초기화는 불안정합니다(활성값과 그래디언트가 블록 수에 따라 커집니다). 표에서 BN이 있는 "
        "망과 비교해 보세요."
    ),
    "degr_title": "## 3. 성능 저하 문제: 깊은 평범한 망은 더 못 배운다",
    "degr_text": (
        "종류마다 얕은 망과 깊은 망을 똑같은 방법과 예산으로 학습시킵니다. 같은 깊이의 평범한 "
        "망과 잔차 망은 *층도 같고 매개변수 수도 같습니다*. 유일한 차이는 `+ X`입니다. 왼쪽은 "
        "평범한 망, 오른쪽은 ResNet입니다. **가는 선은 반복(iteration)마다의 학습 오차, 점이 찍힌 "
        "굵은 선은 에폭마다의 테스트 오차**입니다(논문 그림 6의 배치; 점선은 에폭 경계). "
        "깊은 평범한 망의 *학습* 오차가 더 높다면 문제는 과적합이 아닙니다. 깊은 "
        "망은 그저 최적화하기가 더 어려운 것입니다."
    ),
    "degr_setup": (
        "학습 방법: {dataset}, 학습 부분집합 {train_subset}, 테스트 부분집합 {test_subset}, "
        "{epochs} 에폭, 배치 {batch_size}, SGD lr {lr} ({schedule}, 워밍업 {warmup_epochs} 에폭), "
        "가중치 감쇠 "
        "{weight_decay}, 데이터 증강 {augment}, 시드 {seeds}개(± 는 시드 간 퍼짐). 학습 오차는 "
        "각 망이 학습하는 이미지에서, 학습하는 동안 잰 값입니다(가는 선)."
    ),
    "degr_plain_yes": (
        "**평범한 망: 예, 성능 저하가 나타났습니다.** plain-{deep}의 최종 학습 오차가 "
        "plain-{shallow}보다 높습니다({plain_d} 대 {plain_s}, {plain_gap:+.2f}%p)."
    ),
    "degr_plain_no": (
        "**평범한 망: 이번 실행에서는 성능 저하가 나타나지 않았습니다.** plain-{deep}의 학습 "
        "오차는 {plain_d}, plain-{shallow}는 {plain_s}입니다({plain_gap:+.2f}%p). 짧은 예산에서는 "
        "우연히 드러나거나 가려질 수 있으니 더 긴 `resnet demo --full`을 실행해 보세요."
    ),
    "degr_spread": (
        "**잡음보다 큰 차이인가?** 시드 {seeds}개에서 최종 학습 오차의 퍼짐(표준편차)은 "
        "plain-{shallow}/{deep} 쌍이 {plain_spread:.2f}%p, resnet-{shallow}/{deep} 쌍이 "
        "{res_spread:.2f}%p입니다. 평범한 망의 차이({plain_gap:+.2f}%p)는 퍼짐의 두 배 "
        "{plain_beyond}, ResNet의 이득({res_gain:+.2f}%p)은 퍼짐의 두 배 {res_beyond}."
    ),
    "degr_one_seed": (
        "시드가 하나라 시드 간 퍼짐과 비교할 수 없습니다. `resnet demo --full`은 시드 두 개로 "
        "실행합니다."
    ),
    "beyond": "보다 큽니다",
    "within": "이내입니다",
    "degr_middle": "**중간 깊이**(최종 학습 오차): 평범한 망 {plain_mid}; ResNet {res_mid}.",
    "degr_same_depth": (
        "**같은 깊이, 지름길이 있을 때와 없을 때:** 깊이 {deep}에서 ResNet의 학습 오차는 {res_d}, "
        "층과 매개변수가 같은 평범한 망은 {plain_d}입니다({same_gap:+.2f}%p)."
    ),
    "degr_res_beats": (
        "**ResNet: 깊은 망이 얕은 망보다 낫습니다.** resnet-{deep}의 학습 오차는 {res_d}, "
        "resnet-{shallow}는 {res_s}입니다({res_gap:+.2f}%p)."
    ),
    "degr_res_matches": (
        "**ResNet: 깊은 망이 얕은 망과 대등합니다**({tol:.1f}%p 이내): 학습 오차 "
        "resnet-{deep} {res_d}, resnet-{shallow} {res_s} ({res_gap:+.2f}%p)."
    ),
    "degr_res_no": (
        "**ResNet: 이번 실행에서는 깊은 망이 얕은 망을 따라잡지 못했습니다**: 학습 오차 "
        "resnet-{deep} {res_d}, resnet-{shallow} {res_s} ({res_gap:+.2f}%p, 허용치 {tol:.1f}%p "
        "초과). 이 짧은 예산으로는 드러나지 않았습니다. 논문은 64,000스텝 뒤에 두 망을 "
        "비교하는데, 이는 여기보다 훨씬 깁니다. `resnet demo --full`은 더 오래 학습합니다."
    ),
    "lesion_title": "## 4. 블록 지우기: ResNet은 완만하게, 평범한 망은 급격히 무너진다",
    "lesion_text": (
        "Veit 등(2016, arXiv 1605.06431)은 학습된 망에서 블록을 하나씩 지워 보았습니다. ResNet"
        "에서 블록을 지운다는 것은 그 블록을 항등 함수로 바꾸는 것입니다. 에스컬레이터는 남고 계단 "
        "한 층만 사라집니다. ResNet은 길이가 서로 다른 수많은 경로의 앙상블처럼 동작하므로 블록 "
        "하나를 잃어도 손해가 작습니다. 평범한 망에는 경로가 하나뿐이라 어느 층을 빼도 끊어집니다. "
        "위에서 학습한 깊은 망의 블록을 하나씩 지우며 테스트 정확도를 잽니다. 이미지 크기와 채널 "
        "수를 바꾸는 블록(각 단계의 첫 블록)은 항등 함수로 바꿀 수 없으므로 두 망 모두에서 "
        "**건너뜁니다**(그대로 둡니다)."
    ),
    "lesion_setup": "테스트 이미지 {samples}장으로 측정.",
    "lesion_header": (
        "망",
        "정확도 (아무것도 지우지 않음)",
        "블록 하나 지운 뒤 평균",
        "블록 하나 지운 뒤 최저",
        "건너뛴 블록 수",
    ),
    "land_title": "## 5. 손실 지형: 지름길이 있으면 매끄럽고, 없으면 험하다",
    "land_text": (
        "Li 등(2018, arXiv 1712.09913)은 학습된 망 주변의 손실을 무작위 방향을 따라 그렸습니다. "
        "각 방향은 필터마다 가중치 크기에 맞게 다시 조정합니다(가중치 크기가 다른 망끼리 비교할 "
        "수 있도록). 깊은 평범한 망은 혼란스럽고 가파른 지형을, ResNet은 내려가기 쉬운 매끄러운 "
        "그릇 모양을 보입니다."
    ),
    "land_setup": (
        "테스트 이미지 {samples}장으로 측정, 각 방향으로 최대 {span}만큼 이동; 논문처럼 BN과 "
        "편향 방향은 0입니다. '가장자리 상승'은 1D 곡선 양 끝의 평균 손실에서 학습된 가중치의 "
        "손실을 뺀 값입니다."
    ),
    "land_header": ("망", "학습된 가중치의 손실", "가장자리 상승 (1D)"),
    "summary_title": "## 이번 실행에서 측정한 모든 숫자",
    "sum_block": "블록: 항등 비율",
    "sum_gradflow": "그래디언트 {label}: 첫/끝 노름 비 (초기, 학습 후)",
    "sum_degr": "{label}: 최종 학습 / 테스트 오차",
    "sum_lesion": "블록 지우기 {label}: 전체 / 하나 지운 뒤 평균 / 최저",
    "sum_land": "손실 지형 {label}: 가장자리 상승",
    "summary_header": ("측정 항목", "값"),
    "reproduce": (
        "## 재현하기\n\n`{command}`로 다시 실행할 수 있습니다. `resnet exp NAME --help`는 실험 "
        "하나(NAME: block, gradflow, degradation, landscape, lesion)를 더 많은 옵션과 함께 "
        "실행합니다."
    ),
}

TEXT = {"en": _EN, "ko": _KO}
