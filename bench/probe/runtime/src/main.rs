use std::time::Instant;

mod bn {
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
    use burn::nn::{Linear, LinearConfig};
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::prelude::*;
    use burn::tensor::activation::relu;

    #[derive(Module, Debug)]
    pub struct Net { c1: Conv2d, c2: Conv2d, p: MaxPool2d, f1: Linear, f2: Linear }
    impl Net {
        pub fn new(d: &Device) -> Self {
            Self { c1: Conv2dConfig::new([1,16],[3,3]).init(d), c2: Conv2dConfig::new([16,32],[3,3]).init(d),
                p: MaxPool2dConfig::new([2,2]).with_strides([2,2]).init(), f1: LinearConfig::new(800,64).init(d), f2: LinearConfig::new(64,10).init(d) }
        }
        pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
            let x = self.p.forward(relu(self.c1.forward(x)));
            let x = self.p.forward(relu(self.c2.forward(x)));
            let x: Tensor<2> = x.flatten(1, 3);
            self.f2.forward(relu(self.f1.forward(x)))
        }
    }
    pub fn run() {
        let d = Device::flex().autodiff();
        d.seed(1);
        let mut net = Net::new(&d);
        let mut opt = AdamConfig::new().init();
        let xs: Vec<f32> = (0..64*784).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
        let ys: Vec<i64> = (0..64).map(|i| (i % 10) as i64).collect();
        let loss_fn = CrossEntropyLossConfig::new().init(&d);
        let n = 30;
        for warm in [true, false] {
            let t = super::Instant::now();
            for _ in 0..(if warm {3} else {n}) {
                let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), [64,1,28,28]), &d);
                let y = Tensor::<1, Int>::from_data(TensorData::new(ys.clone(), [64]), &d);
                let loss = loss_fn.forward(net.forward(x), y);
                let g = loss.backward();
                let g = GradientsParams::from_grads(g, &net);
                net = opt.step(1e-3, net, g);
            }
            if !warm { println!("burn-flex train step b64: {:.2} ms", t.elapsed().as_secs_f64()*1e3/n as f64); }
        }
        let t = super::Instant::now();
        for _ in 0..n {
            let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), [64,1,28,28]), &d).require_grad();
            let y = Tensor::<1, Int>::from_data(TensorData::new(ys.clone(), [64]), &d);
            let loss = loss_fn.forward(net.forward(x.clone()), y);
            let g = loss.backward();
            let gx = x.grad(&g).unwrap();
            let _ = gx.into_data();
        }
        println!("burn-flex input-grad b64: {:.2} ms", t.elapsed().as_secs_f64()*1e3/n as f64);
    }
}

mod cd {
    use candle_core::{DType, Device, Tensor, Module, D};
    use candle_nn::{conv2d, linear, Conv2d, Linear, VarBuilder, VarMap, Optimizer, AdamW, ParamsAdamW};
    struct Net { c1: Conv2d, c2: Conv2d, f1: Linear, f2: Linear }
    impl Net {
        fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
            let x = self.c1.forward(x)?.relu()?.max_pool2d(2)?;
            let x = self.c2.forward(&x)?.relu()?.max_pool2d(2)?;
            let x = x.flatten_from(1)?;
            self.f2.forward(&self.f1.forward(&x)?.relu()?)
        }
    }
    pub fn run() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let net = Net { c1: conv2d(1,16,3,Default::default(), vb.pp("c1"))?, c2: conv2d(16,32,3,Default::default(), vb.pp("c2"))?,
            f1: linear(800,64,vb.pp("f1"))?, f2: linear(64,10,vb.pp("f2"))? };
        let mut opt = AdamW::new(vm.all_vars(), ParamsAdamW { lr: 1e-3, ..Default::default() })?;
        let xs: Vec<f32> = (0..64*784).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
        let ys: Vec<u32> = (0..64).map(|i| (i % 10) as u32).collect();
        let n = 30;
        for warm in [true, false] {
            let t = super::Instant::now();
            for _ in 0..(if warm {3} else {n}) {
                let x = Tensor::from_vec(xs.clone(), (64,1,28,28), &dev)?;
                let y = Tensor::from_vec(ys.clone(), 64, &dev)?;
                let logits = net.forward(&x)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                opt.backward_step(&loss)?;
            }
            if !warm { println!("candle train step b64: {:.2} ms", t.elapsed().as_secs_f64()*1e3/n as f64); }
        }
        let t = super::Instant::now();
        for _ in 0..n {
            let x = candle_core::Var::from_tensor(&Tensor::from_vec(xs.clone(), (64,1,28,28), &dev)?)?;
            let y = Tensor::from_vec(ys.clone(), 64, &dev)?;
            let loss = candle_nn::loss::cross_entropy(&net.forward(x.as_tensor())?, &y)?;
            let g = loss.backward()?;
            let gx = g.get(x.as_tensor()).unwrap();
            let _ = gx.sum_all()?.to_scalar::<f32>()?;
        }
        let _ = D::Minus1;
        println!("candle input-grad b64: {:.2} ms", t.elapsed().as_secs_f64()*1e3/n as f64);
        Ok(())
    }
}

fn main() {
    bn::run();
    cd::run().unwrap();
}
