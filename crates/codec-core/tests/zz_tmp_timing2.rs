use std::time::Instant;
use codec_core::{Device, Tensor}; use candle_core::Module;
use codec_core::nn::dac_blocks::{Conv, ConvSpec};
use codec_core::nn::snake::Snake1d;
use candle_nn::VarBuilder;
use std::collections::HashMap;

#[test]
#[ignore]
fn timing2() {
    let dev = Device::Cpu;
    for (c, l) in [(96usize, 220500usize), (768, 3445)] {
        let x = Tensor::randn(0f32, 1f32, (1, c, l), &dev).unwrap();
        let alpha = Tensor::ones((1, c, 1), codec_core::DType::F32, &dev).unwrap();
        let snake = Snake1d::from_alpha(alpha).unwrap();
        let t = Instant::now(); for _ in 0..3 { let _ = snake.forward(&x).unwrap(); } eprintln!("snake c{c} l{l}: {:?}", t.elapsed()/3);
        let mut m = HashMap::new();
        m.insert("weight".to_string(), Tensor::randn(0f32, 0.1f32, (c, c, 7), &dev).unwrap());
        m.insert("bias".to_string(), Tensor::zeros(c, codec_core::DType::F32, &dev).unwrap());
        let vb = VarBuilder::from_tensors(m, codec_core::DType::F32, &dev);
        let conv = Conv::new(ConvSpec::new(c, c, 7).padding(9).dilation(3), vb).unwrap();
        let t = Instant::now(); for _ in 0..3 { let _ = conv.forward(&x).unwrap(); } eprintln!("conv k7 c{c} l{l}: {:?} ({:.1} GFLOP/s)", t.elapsed()/3, (c*c*7*l*2) as f64 / (t.elapsed()/3).as_secs_f64() / 1e9);
    }
}

#[test]
#[ignore]
fn timing3() {
    let dev = Device::Cpu;
    for (c, l) in [(96usize, 220500usize), (768, 3445)] {
        let x = Tensor::randn(0f32, 1f32, (1, c, l), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.1f32, (c, c, 7), &dev).unwrap();
        let taps: Vec<Tensor> = (0..7).map(|k| w.narrow(2, k, 1).unwrap().squeeze(2).unwrap().contiguous().unwrap()).collect();
        let d = 3;
        let run = || {
            let xp = x.pad_with_zeros(2, 9, 9).unwrap();
            let mut acc: Option<Tensor> = None;
            for (k, wk) in taps.iter().enumerate() {
                let xs = xp.narrow(2, k * d, l).unwrap().squeeze(0).unwrap();
                let y = wk.matmul(&xs).unwrap();
                acc = Some(match acc { None => y, Some(a) => (a + y).unwrap() });
            }
            acc.unwrap()
        };
        let t = Instant::now(); for _ in 0..3 { let _ = run(); } eprintln!("tapwise k7 c{c} l{l}: {:?} ({:.1} GFLOP/s)", t.elapsed()/3, (c*c*7*l*2) as f64 / (t.elapsed()/3).as_secs_f64() / 1e9);
        let mut m = HashMap::new();
        m.insert("weight".to_string(), w.clone());
        m.insert("bias".to_string(), Tensor::zeros(c, codec_core::DType::F32, &dev).unwrap());
        let vb = VarBuilder::from_tensors(m, codec_core::DType::F32, &dev);
        let conv = Conv::new(ConvSpec::new(c, c, 7).padding(9).dilation(3), vb).unwrap();
        let a = conv.forward(&x).unwrap().squeeze(0).unwrap();
        let b = run();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        eprintln!("max diff {diff}");
    }
}
