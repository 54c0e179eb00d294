"""The controller side: features, rewards, the environment, the PPO agent, controller training, collection, export."""
